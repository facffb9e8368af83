/**
 * The remote end of a proxy's link (subprotocol pythond.link.1, src/protocol/version.ts): one
 * multiplexer (src/link/mux.ts) on the accepted WebSocket, each of its streams one virtual client
 * connection. The proxy (links.ts) opens a stream per connection it needs, and everything on it
 * is what a client connection would carry — so the remote daemon routes, checks, logs and
 * answers exactly as for a direct client (same caller, same peer, same access-log lines).
 *
 *   proxy -> here   open {rid, proto}      a virtual connection speaking `proto` (a client subprotocol)
 *                   t {rid, more?} + text  a text frame of that connection (in pieces: `more` on all
 *                                          but the last; over `maxFrame` in all ends it with 1009)
 *                   b {rid, more?} + bytes a binary frame (typed keys while attached)
 *                   ack {rid, n}           the proxy's client took n bytes (credits, below)
 *                   cancel {rid}           the proxy's client went away: the connection closes
 *                   hello {rid}            -> reply {pid, version} (link set-up and liveness)
 *   here -> proxy   t / b {rid, more?}     the connection's replies, in order (in pieces, as above)
 *                   end {rid, code, reason}   the daemon closed the connection
 *
 * Credits: what is sent on a stream counts in that connection's buffered() until the proxy acks
 * it, so run.ts and attach.ts slow a cell (or skip terminal output) for a slow client behind a
 * proxy exactly as for a direct one.
 */
import type { Caller } from "../protocol/commands.ts";
import { PythondError } from "../protocol/errors.ts";
import { SUBPROTOCOL, SUBPROTOCOL_CODES, SUBPROTOCOL_LEGACY, VERSION } from "../protocol/version.ts";
import type { Channel } from "../link/channel.ts";
import { Mux, type Header, type Outgoing } from "../link/mux.ts";
import { ClientConn, type Reply, type Router } from "../daemon/conn.ts";
import { sendInPieces } from "./links.ts";
import type { AccessLog } from "../daemon/access-log.ts";

const CLIENT_PROTOCOLS: readonly string[] = [SUBPROTOCOL_CODES, SUBPROTOCOL, SUBPROTOCOL_LEGACY];
/** Below this many unacknowledged bytes a connection counts as drained. */
const DRAINED = 256 << 10;
const dec = new TextDecoder();

export interface LinkPeer {
  peer: string;
  caller: Caller;
  nextConnId(): number;
  log: AccessLog;
  router: Router;
  /** The largest frame a connection may send (the daemon's limit for direct clients). */
  maxFrame: number;
}

/** Serves one proxy link until it closes; its virtual connections close with it. */
export function serveLink(channel: Channel, who: LinkPeer): Mux {
  const conns = new Map<number, ClientConn>();
  const mux = new Mux(channel);
  mux.onFrame = (h, body) => {
    const rid = Number(h.rid);
    if (h.op === "hello") return mux.send({ op: "reply", rid, ok: true, pid: process.pid, version: VERSION });
    if (h.op !== "open" || !Number.isInteger(rid) || conns.has(rid)) return;
    const proto = String(h.proto ?? "");
    if (!CLIENT_PROTOCOLS.includes(proto)) {
      mux.send({ op: "t", rid }, new PythondError("usage", `unknown subprotocol ${JSON.stringify(proto)}`).toFrame());
      return mux.send({ op: "end", rid, code: 1002, reason: "unknown subprotocol" });
    }
    let conn!: ClientConn;
    const pieces: Uint8Array[] = [];
    let pieceBytes = 0;
    const out: Outgoing = mux.serve(rid, {
      input: (ih, b) => {
        if (ih.op !== "t" && ih.op !== "b") return;
        if (ih.more || pieces.length) {
          pieces.push(b);
          pieceBytes += b.length;
          if (pieceBytes > who.maxFrame) {
            // as the WebSocket server does for a direct client: close 1009
            pieces.length = 0;
            return conn.reply.close(1009, "frame too large");
          }
          if (ih.more) return;
          b = Buffer.concat(pieces, pieceBytes);
          pieces.length = 0;
          pieceBytes = 0;
        }
        input(conn, ih, b);
      },
      acked: () => {
        if (conn.reply.buffered() < DRAINED) conn.drained();
      },
      cancel: () => close(),
      lost: () => close(),
    });
    const close = () => {
      if (!conns.delete(rid)) return;
      conn.closed();
      who.log.write("disconnect", { conn_id: conn.id, peer: conn.peer });
    };
    conn = new ClientConn(who.nextConnId(), who.peer, who.caller, proto, streamReply(mux, out, close), who.router);
    conns.set(rid, conn);
    who.log.write("connect", { conn_id: conn.id, peer: conn.peer });
  };
  return mux;
}

function input(conn: ClientConn, h: Header, body: Uint8Array): void {
  if (h.op === "t") return conn.enqueue(dec.decode(body));
  if (h.op !== "b") return;
  if (conn.attached) conn.attached.input(body);
  else conn.reply.text(new PythondError("binary_frame", "binary frames are only accepted while attached").toFrame(conn.codes));
}

/** A virtual connection's replies: frames on its stream, buffered until acknowledged. */
function streamReply(mux: Mux, out: Outgoing, onClose: () => void): Reply {
  return {
    text: (s) => sendInPieces((op, f, body) => out.send(op, f, body), s),
    binary: (b) => sendInPieces((op, f, body) => out.send(op, f, body), b),
    buffered: () => out.unacked + mux.channel.buffered(),
    close: (code, reason) => {
      out.end({ code, reason });
      onClose();
    },
    get open() {
      return !out.ended && !mux.closed;
    },
  };
}
