/**
 * Tunnels on a node link (src/link/mux.ts): a tunnel is one stream of the multiplexer. The side
 * that opens it (the hub, for a client) sends `{op:"io", rid, spec}`; every unit then travels as
 * a frame `{op:"u", rid}` with the unit as its body, both ways; the node's `end` (or the opener's
 * `cancel`) ends the stream. The multiplexer's own per-stream credits are not used: the tunnel
 * counts its credits end to end (tunnel.ts), across the hub.
 */
import { encodeWorkerFrame } from "../../link/frame.ts";
import type { Header, Mux } from "../../link/mux.ts";
import type { IoSpec } from "../../protocol/fleet-io.ts";
import type { Pipe } from "./tunnel.ts";

export const IO_OP = "io";
export const UNIT_OP = "u";

/**
 * The `u` frame (src/link/frame.ts layout) of a unit, in front of its payload: length, header
 * length, header, the unit's head. The payload is sent after it as it is (Mux.sendParts), never
 * copied to join them; `spare` bytes more at the end hold a small payload copied in.
 */
export function unitPrefix(header: Uint8Array, head: readonly number[], payloadBytes: number, spare = 0): Uint8Array {
  const total = 4 + header.length + head.length + payloadBytes;
  const f = Buffer.allocUnsafeSlow(8 + header.length + head.length + spare);
  f.writeUInt32BE(total, 0);
  f.writeUInt32BE(header.length, 4);
  f.set(header, 8);
  f.set(head, 8 + header.length);
  return f;
}

/** Units smaller than this are sent as one buffer; larger ones as prefix and payload, not joined. */
const SMALL = 4096;

/** A pipe on stream `rid` of `mux`, and the two events its owner feeds it (a unit came, the stream went). */
function muxPipe(mux: Mux, rid: number, live: () => boolean, close: () => void): Pipe & { unit(u: Uint8Array): void; gone(reason: string): void } {
  const header = Buffer.from(JSON.stringify({ op: UNIT_OP, rid }));
  let onUnit: (u: Uint8Array) => void = () => {};
  let onClose: (reason: string) => void = () => {};
  return {
    send: (head, payload = "") => {
      if (!live()) return;
      const body = typeof payload === "string" ? Buffer.from(payload) : payload;
      if (body.length >= SMALL) return mux.sendParts(unitPrefix(header, head, body.length), body);
      // a small unit (control records, acks: most of them) is one buffer, as it always was
      const f = unitPrefix(header, head, body.length, body.length);
      f.set(body, f.length - body.length);
      mux.sendFrame(f);
    },
    room: 8 + header.length,
    sendRoomy: (buf) => {
      if (!live()) return;
      const b = Buffer.from(buf.buffer, buf.byteOffset, buf.length);
      b.writeUInt32BE(buf.length - 4, 0);
      b.writeUInt32BE(header.length, 4);
      b.set(header, 8);
      mux.sendFrame(buf);
    },
    onUnit: (cb) => (onUnit = cb),
    onClose: (cb) => (onClose = cb),
    close,
    unit: (u) => onUnit(u),
    gone: (reason) => onClose(reason),
  };
}

/** The node's end of a tunnel the hub opened as stream `rid`. Call it while handling the `io` frame. */
export function servePipe(mux: Mux, rid: number): Pipe {
  const out = mux.serve(rid, {
    input: (h, body) => {
      if (h.op === UNIT_OP) pipe.unit(body);
    },
    cancel: () => pipe.gone("the client went away"),
    lost: (reason) => pipe.gone(`link lost: ${reason}`),
  });
  const pipe = muxPipe(mux, rid, () => !out.ended && !mux.closed, () => out.end());
  return pipe;
}

/** Opens a tunnel to the peer of `mux` (the hub's side of a node link, and tests). */
export function openPipe(mux: Mux, spec: IoSpec): Pipe {
  let ended = false;
  const rid = mux.open((id) => encodeWorkerFrame({ op: IO_OP, rid: id, spec }), {
    frame: (h: Header, body) => {
      if (h.op === UNIT_OP) pipe.unit(body);
      else if (h.op === "end") {
        ended = true;
        pipe.gone("ended");
      }
    },
    lost: (reason) => pipe.gone(`link lost: ${reason}`),
  });
  const pipe = muxPipe(mux, rid, () => !mux.closed, () => {
    if (!ended) mux.cancel(rid);
  });
  return pipe;
}
