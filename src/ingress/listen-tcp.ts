/**
 * The daemon's TCP/TLS listeners (`--listen HOST:PORT`, and the local TCP mode of platforms
 * without Unix sockets). Each connection goes through a pre-auth stage here:
 *
 *   TLS handshake (client certificate requested, judged by us, not by the TLS library)
 *   -> request head -> penalty check -> mTLS + token (auth.ts)
 *   -> rejected: upgrade, `ERR auth failed…`, close 1008, after the source's penalty delay
 *   -> accepted: the head, minus the token, plus the real peer address, is replayed to the
 *      daemon's own WebSocket server on its Unix socket, and bytes are piped both ways (splice.ts).
 *
 * Every connection that does not get through leaves an `event=auth status=error reason=…` line
 * in the access log; one that does leaves `event=auth status=ok`, then the usual lines under the
 * same conn_id. Tokens and request bodies are never logged.
 *
 * Why the client certificate is judged here rather than with `ca` + `rejectUnauthorized`: the
 * trusted set can then change while the daemon runs (`pyctl trust` takes effect on the next
 * connection, nothing is restarted or dropped), the log can say which certificate was refused,
 * and the client gets a clear `ERR` instead of a bare TLS alert.
 */
import { timingSafeEqual } from "node:crypto";
import { unlinkSync } from "node:fs";
import { join } from "node:path";
import type { Socket, TCPSocketListener } from "bun";
import { runtimeDir } from "../paths.ts";
import { hostPort } from "../protocol/endpoint.ts";
import { PythondError } from "../protocol/errors.ts";
import { SUBPROTOCOLS } from "../protocol/version.ts";
import { writeFileAtomic } from "../tls/files.ts";
import { fingerprintOfPem } from "../tls/pem.ts";
import type { AccessLog } from "../daemon/access-log.ts";
import { authorize, newToken, Penalties, rejectionFrame, TrustedClients } from "./auth.ts";
import { BRIDGE_HEADER, headEnd, httpResponse, isWebSocketUpgrade, MAX_HEAD, parseHead, rejectionBytes, type RequestHead } from "./bridge.ts";
import { spliceToDaemon, type ClientSocket, type Conn, type ListenContext } from "./splice.ts";
import type { ListenAddress, RemoteOptions } from "./types.ts";
import type { AdoptedSocket, NodeSocketInfo } from "../fleet/hub/admit.ts";
import { NODE_SUBPROTOCOL } from "../protocol/fleet.ts";

/**
 * The fleet hub, when this daemon is one (every daemon with a listener is): it takes the sockets
 * of node links, which end in this process instead of going through the bridge (admit.ts says why).
 */
export interface NodeIngress {
  adopt(socket: Socket<unknown>, key: string, early: Uint8Array[], info: NodeSocketInfo): AdoptedSocket;
}

const PREAUTH_MS = 10_000;
/** Connections from one source still in TLS or before their request head. A fleet behind one NAT
 * address, or the node simulator (bench/fleet-sim.ts), may need more: PYTHOND_PREAUTH_PER_SOURCE. */
const MAX_PREAUTH_PER_SOURCE = Number(process.env.PYTHOND_PREAUTH_PER_SOURCE || 64);
const MAX_EARLY = 64 * 1024;
const PROTOCOLS = SUBPROTOCOLS;

/**
 * TCP access for one daemon run: the token, the certificate, the listeners, and the secret that
 * marks bridged requests. Built by `prepareRemote` before the daemon starts serving (so that bad
 * flags fail at once and --show-token lines come first), then `listen` once the Unix server runs.
 */
export type { ListenContext };

export class RemoteAccess {
  readonly bridgeSecret = newToken();
  private listeners: TCPSocketListener<Conn>[] = [];
  readonly penalties = new Penalties();
  /** Set by the daemon: node links go there. */
  fleet?: NodeIngress;
  private readonly trusted = new TrustedClients();
  private preauth = new Map<string, number>();
  private daemonJson?: string;
  /** The bound endpoints, e.g. "tls://127.0.0.1:7399". */
  readonly endpoints: string[] = [];

  constructor(
    readonly opts: RemoteOptions,
    readonly addresses: ListenAddress[],
    private readonly token: string,
    private readonly cert?: { certPem: string; keyPem: string; fingerprint: string },
  ) {}

  /**
   * Who a request replayed by the bridge is (null: not bridged, a client of the Unix socket).
   * Clients of the local TCP mode's listener count as local: holding the 0600 daemon.json token
   * proves the same user, as the 0600 socket does.
   */
  fromBridge(req: Request): { peer: string; connId: number; caller: "local" | "remote" } | null {
    const got = req.headers.get(BRIDGE_HEADER.secret);
    if (got === null || got.length !== this.bridgeSecret.length) return null;
    if (!timingSafeEqual(Buffer.from(got), Buffer.from(this.bridgeSecret))) return null;
    const caller = req.headers.get(BRIDGE_HEADER.caller) === "local" ? "local" : "remote";
    return { peer: req.headers.get(BRIDGE_HEADER.peer) ?? "", connId: Number(req.headers.get(BRIDGE_HEADER.conn)), caller };
  }

  async listen(ctx: ListenContext): Promise<void> {
    for (const a of this.addresses) {
      let l: TCPSocketListener<Conn>;
      try {
        l = Bun.listen<Conn>({
          hostname: a.host,
          port: a.port,
          ...(a.tls ? { tls: { cert: this.cert!.certPem, key: this.cert!.keyPem, requestCert: true, rejectUnauthorized: false } } : {}),
          socket: this.handlers(ctx, a.tls, a.local === true),
        });
      } catch (e) {
        this.stop();
        const why = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
        throw new PythondError("io", `cannot listen on ${hostPort(a.host, a.port)}: ${why}`);
      }
      this.listeners.push(l);
      this.endpoints.push(`${a.tls ? "tls" : "tcp"}://${hostPort(a.host, l.port)}`);
    }
    // daemon.json first: whoever reads "listening on" may look for it at once.
    if (this.opts.localTcp) this.writeDaemonJson(ctx.innerSocket);
    for (const e of this.endpoints) ctx.say(`listening on ${e}${e.startsWith("tls:") ? "" : " (plain TCP, loopback only)"}`);
  }

  /** Local TCP mode: `{"port","token","pid"}`, 0600, written atomically beside the socket. */
  private writeDaemonJson(innerSocket: string): void {
    const port = this.listeners[0]!.port;
    this.daemonJson = join(runtimeDir(innerSocket), "daemon.json");
    writeFileAtomic(this.daemonJson, JSON.stringify({ port, token: this.token, pid: process.pid }) + "\n", 0o600);
  }

  stop(): void {
    for (const l of this.listeners) l.stop(true);
    this.listeners = [];
    if (this.daemonJson) {
      try {
        unlinkSync(this.daemonJson);
      } catch {}
    }
  }

  private handlers(ctx: ListenContext, tls: boolean, local: boolean) {
    const fail = (s: ClientSocket, reason: string, extra: Record<string, string> = {}) => {
      const c = s.data;
      if (c.phase === "done") return;
      this.finish(c);
      ctx.log.write("auth", { conn_id: c.id, peer: c.peer, status: "error", reason, ...extra });
    };
    return {
      open: (s: ClientSocket) => {
        const peer = hostPort(s.remoteAddress, s.remotePort ?? 0);
        const source = Penalties.sourceOf(s.remoteAddress);
        const c: Conn = {
          id: ctx.nextConnId(),
          peer,
          source,
          tls,
          local,
          clientCert: null,
          closed: false,
          phase: tls ? "handshake" : "head",
          head: [],
          headBytes: 0,
          early: [],
          earlyBytes: 0,
        };
        s.data = c;
        const n = (this.preauth.get(source) ?? 0) + 1;
        this.preauth.set(source, n);
        if (n > MAX_PREAUTH_PER_SOURCE) {
          fail(s, "too_many_connections");
          return void s.end();
        }
        c.timer = setTimeout(() => {
          fail(s, "timeout");
          s.end();
        }, PREAUTH_MS);
      },
      handshake: (s: ClientSocket, ok: boolean, err: Error | null) => {
        if (!ok) {
          fail(s, "tls_handshake_failed", { detail: (err as NodeJS.ErrnoException | null)?.code ?? "" });
          return void s.end();
        }
        // fingerprint256 is computed natively ("AA:BB:…", as fingerprintOfPem gives); hashing the
        // raw DER again in JavaScript cost ~0.1 ms a connection (15,000 nodes reconnecting).
        const peerCert = s.getPeerCertificate();
        const fp = peerCert?.fingerprint256;
        if (typeof fp === "string" && /^[0-9A-F]{2}(:[0-9A-F]{2}){31}$/i.test(fp)) s.data.clientCert = fp.toUpperCase();
        else if (peerCert?.raw && peerCert.raw.length > 0) s.data.clientCert = fingerprintOfPem(new Uint8Array(peerCert.raw));
        s.data.phase = "head";
      },
      data: (s: ClientSocket, d: Uint8Array) => {
        const c = s.data;
        if (c.phase === "node") return c.node!.data(d);
        if (c.phase === "piping" && c.toInner) return c.toInner.write(d);
        if (c.phase === "judging" || c.phase === "piping") {
          // sent before the upgrade was answered: kept (bounded) until the bridge is up
          c.early.push(d.slice());
          c.earlyBytes += d.length;
          if (c.earlyBytes > MAX_EARLY) s.end();
          return;
        }
        if (c.phase !== "head") return;
        if (c.headBytes === 0 && d.length > 0 && !(d[0]! >= 0x41 && d[0]! <= 0x5a)) {
          // Not an HTTP method: typically a TLS ClientHello (0x16) sent to a plain listener. An
          // HTTP answer at once lets a TLS client see "wrong version" instead of waiting.
          fail(s, "bad_request", { detail: d[0] === 0x16 ? "tls_to_plain_listener" : "not_http" });
          return void s.end(httpResponse(400, "Bad Request", "pythond: plain WebSocket listener (no TLS here)\n"));
        }
        c.head.push(d.slice());
        c.headBytes += d.length;
        const buf = Buffer.concat(c.head);
        const end = headEnd(buf);
        if (end < 0) {
          if (c.headBytes > MAX_HEAD) {
            fail(s, "bad_request", { detail: "head_too_large" });
            s.end(httpResponse(431, "Request Header Fields Too Large", "request head too large\n"));
          }
          return;
        }
        c.phase = "judging";
        if (end < buf.length) {
          c.early.push(buf.subarray(end));
          c.earlyBytes += buf.length - end;
        }
        void this.judge(ctx, s, buf.subarray(0, end).toString("latin1"), fail);
      },
      drain: (s: ClientSocket) => (s.data.phase === "node" ? s.data.node!.drain() : s.data.toClient?.drain()),
      close: (s: ClientSocket) => {
        const c = s.data;
        if (!c) return;
        c.closed = true;
        if (c.phase === "node") return c.node!.close();
        if (c.phase === "piping") c.toInner?.end();
        else fail(s, c.phase === "handshake" ? "closed_during_handshake" : "closed_before_request");
        this.finish(c);
      },
      error: () => {
        // `close` follows and does the accounting
      },
    };
  }

  /** Leaves the pre-auth stage (once): timer and per-source count. */
  private finish(c: Conn): void {
    if (c.timer) clearTimeout(c.timer);
    c.timer = undefined;
    if (c.phase === "done" || c.phase === "piping" || c.phase === "node") return;
    c.phase = "done";
    const n = (this.preauth.get(c.source) ?? 1) - 1;
    if (n <= 0) this.preauth.delete(c.source);
    else this.preauth.set(c.source, n);
  }

  private async judge(
    ctx: ListenContext,
    s: ClientSocket,
    headText: string,
    fail: (s: ClientSocket, reason: string, extra?: Record<string, string>) => void,
  ): Promise<void> {
    const c = s.data;
    const h = parseHead(headText);
    if (!h) {
      fail(s, "bad_request");
      return void s.end(httpResponse(400, "Bad Request", "bad request\n"));
    }
    if (!isWebSocketUpgrade(h)) {
      fail(s, "not_websocket");
      return void s.end(httpResponse(426, "Upgrade Required", "pythond: WebSocket only\n"));
    }
    if (this.fleet && offers(h, NODE_SUBPROTOCOL)) {
      // A node link: authenticated by the fleet hub (its key and id, or a join token), not by
      // the daemon's token; the hub keeps the socket (one descriptor per node).
      this.finish(c);
      c.phase = "node";
      const early = c.early;
      c.early = [];
      c.node = this.fleet.adopt(s as Socket<unknown>, h.headers.get("sec-websocket-key")!, early, {
        connId: c.id,
        peer: c.peer,
        source: c.source,
        tls: c.tls,
        clientCert: c.clientCert,
      });
      return;
    }
    // The first 16 hex digits name the file in trusted_clients/, which is what an admin looks for.
    const certField: Record<string, string> = c.clientCert ? { client_cert: c.clientCert.replaceAll(":", "").slice(0, 16).toLowerCase() } : {};
    const admission = this.penalties.admit(c.source);
    if (admission.refused) {
      fail(s, "too_many_failures", certField);
      return void s.end(rejectionBytes(h, rejectionFrame("too_many_failures"), 1008, PROTOCOLS));
    }
    const verdict = authorize(this.token, this.trusted.current(), {
      tls: c.tls,
      clientCert: c.clientCert,
      authorization: h.headers.get("authorization"),
    });
    if (!verdict.ok) {
      const pending = this.penalties.failed(c.source);
      const delay = admission.failureDelayMs;
      fail(s, verdict.reason, { ...certField, ...(delay ? { delay_ms: String(delay) } : {}) });
      if (delay) await Bun.sleep(delay);
      pending.done();
      return void s.end(rejectionBytes(h, rejectionFrame(verdict.reason), 1008, PROTOCOLS));
    }
    this.finish(c);
    c.phase = "piping";
    // Logged once the daemon's server has answered: it may still refuse the request (a head Bun
    // finds malformed or too large, 400/431), and then that refusal is the outcome to log.
    c.authOk = { status: "ok", method: verdict.method, ...certField };
    await spliceToDaemon(ctx, s, h, this.bridgeSecret);
  }
}

/** True when the client offered this WebSocket subprotocol. */
function offers(h: RequestHead, protocol: string): boolean {
  return (h.headers.get("sec-websocket-protocol") ?? "").split(",").some((p) => p.trim() === protocol);
}
