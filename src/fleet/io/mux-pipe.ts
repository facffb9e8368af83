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

/** A `u` frame (src/link/frame.ts layout) holding one unit, built with one copy of the payload. */
export function unitFrame(header: Uint8Array, head: readonly number[], payload: Uint8Array | string = ""): Uint8Array {
  const body = typeof payload === "string" ? Buffer.from(payload) : payload;
  const total = 4 + header.length + head.length + body.length;
  const f = Buffer.allocUnsafeSlow(4 + total);
  f.writeUInt32BE(total, 0);
  f.writeUInt32BE(header.length, 4);
  f.set(header, 8);
  f.set(head, 8 + header.length);
  f.set(body, 8 + header.length + head.length);
  return f;
}

/** The node's end of a tunnel the hub opened as stream `rid`. Call it while handling the `io` frame. */
export function servePipe(mux: Mux, rid: number): Pipe {
  let onUnit: (u: Uint8Array) => void = () => {};
  let onClose: (reason: string) => void = () => {};
  const out = mux.serve(rid, {
    input: (h, body) => {
      if (h.op === UNIT_OP) onUnit(body);
    },
    cancel: () => onClose("the client went away"),
    lost: (reason) => onClose(`link lost: ${reason}`),
  });
  const header = Buffer.from(JSON.stringify({ op: UNIT_OP, rid }));
  return {
    send: (head, payload) => {
      if (!out.ended && !mux.closed) mux.sendFrame(unitFrame(header, head, payload));
    },
    onUnit: (cb) => (onUnit = cb),
    onClose: (cb) => (onClose = cb),
    close: () => out.end(),
  };
}

/** Opens a tunnel to the peer of `mux` (the hub's side of a node link, and tests). */
export function openPipe(mux: Mux, spec: IoSpec): Pipe {
  let onUnit: (u: Uint8Array) => void = () => {};
  let onClose: (reason: string) => void = () => {};
  let ended = false;
  const rid = mux.open((id) => encodeWorkerFrame({ op: IO_OP, rid: id, spec }), {
    frame: (h: Header, body) => {
      if (h.op === UNIT_OP) onUnit(body);
      else if (h.op === "end") {
        ended = true;
        onClose("ended");
      }
    },
    lost: (reason) => onClose(`link lost: ${reason}`),
  });
  const header = Buffer.from(JSON.stringify({ op: UNIT_OP, rid }));
  return {
    send: (head, payload) => {
      if (!mux.closed) mux.sendFrame(unitFrame(header, head, payload));
    },
    onUnit: (cb) => (onUnit = cb),
    onClose: (cb) => (onClose = cb),
    close: () => {
      if (!ended) mux.cancel(rid);
    },
  };
}
