/**
 * A connection on a TCP/TLS listener (listen-tcp.ts), and where an accepted one goes: its request
 * head, with the token taken out and the real peer added (bridge.ts rewriteHead), is replayed to
 * the daemon's own WebSocket server on its Unix socket, and bytes are piped both ways from then
 * on. Node links do not come here: the fleet hub keeps their sockets (src/fleet/hub/admit.ts).
 */
import type { Socket } from "bun";
import type { AccessLog } from "../daemon/access-log.ts";
import type { AdoptedSocket } from "../fleet/hub/admit.ts";
import { Pipe, rewriteHead, type RequestHead } from "./bridge.ts";

export interface Conn {
  id: number;
  peer: string;
  source: string;
  tls: boolean;
  /** From the local TCP mode's listener (see fromBridge). */
  local: boolean;
  clientCert: string | null;
  phase: "handshake" | "head" | "judging" | "piping" | "node" | "done";
  /** A node link handed to the fleet hub (src/fleet/hub/admit.ts): it gets the socket's events. */
  node?: AdoptedSocket;
  /** The client's socket has closed. */
  closed: boolean;
  /** The daemon's first answer (101) has come back through the bridge. */
  upgraded?: boolean;
  /** The `event=auth status=ok` fields, logged when the daemon's server accepts the upgrade. */
  authOk?: Record<string, string>;
  head: Uint8Array[];
  headBytes: number;
  early: Uint8Array[];
  earlyBytes: number;
  timer?: ReturnType<typeof setTimeout>;
  toInner?: Pipe;
  toClient?: Pipe;
  inner?: Socket<Conn>;
}

export type ClientSocket = Socket<Conn>;

export interface ListenContext {
  /** The daemon's Unix socket, where accepted connections are replayed. */
  innerSocket: string;
  log: AccessLog;
  nextConnId(): number;
  say(msg: string): void;
}

/** Replays the accepted request to the daemon's own server and pipes both ways. */
export async function spliceToDaemon(ctx: ListenContext, s: ClientSocket, h: RequestHead, bridgeSecret: string): Promise<void> {
  const c = s.data;
  const logOutcome = (statusLine: string) => {
    const ok = c.authOk ?? {};
    c.authOk = undefined;
    if (statusLine.startsWith("HTTP/1.1 101")) return ctx.log.write("auth", { conn_id: c.id, peer: c.peer, ...ok });
    const code = /^HTTP\/1\.1 (\d{3})/.exec(statusLine)?.[1] ?? "none";
    const { method: _m, status: _s, ...rest } = ok;
    ctx.log.write("auth", { conn_id: c.id, peer: c.peer, ...rest, status: "error", reason: "bad_request", detail: `daemon_http_${code}` });
  };
  let inner: Socket<Conn>;
  try {
    inner = await Bun.connect<Conn>({
      unix: ctx.innerSocket,
      data: c,
      socket: {
        data: (u, d) => {
          // One request per bridged connection: if the daemon did not switch protocols, relay
          // its answer and hang up, so that no second, unvouched request can follow on this
          // connection (it would look like a local client).
          if (!c.upgraded) {
            c.upgraded = true;
            const statusLine = Buffer.from(d.subarray(0, 12)).toString("latin1");
            logOutcome(statusLine);
            if (!statusLine.startsWith("HTTP/1.1 101")) {
              c.toClient?.write(d);
              c.toClient?.end();
              return void u.end();
            }
          }
          c.toClient?.write(d);
        },
        drain: () => c.toInner?.drain(),
        close: () => {
          if (!c.upgraded) {
            c.upgraded = true;
            logOutcome(""); // the daemon hung up without answering
          }
          c.toClient?.end();
        },
        error: () => {},
      },
    });
  } catch {
    logOutcome("");
    return void s.end();
  }
  if (c.closed) {
    // the client left while we connected
    inner.end();
    return;
  }
  c.inner = inner;
  c.toInner = new Pipe(s as Socket<unknown>, inner as Socket<unknown>);
  c.toClient = new Pipe(inner as Socket<unknown>, s as Socket<unknown>);
  const bridge = { secret: bridgeSecret, peer: c.peer, connId: c.id, caller: c.local ? ("local" as const) : ("remote" as const) };
  c.toInner.write(new TextEncoder().encode(rewriteHead(h, bridge)));
  for (const d of c.early) c.toInner.write(d);
  c.early = [];
}
