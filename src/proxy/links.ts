/**
 * The link of a remote proxy (proxy.ts) to its daemon: ONE authenticated WebSocket (pythond.link.1)
 * carrying a multiplexer (src/link/mux.ts), on which every command opens a virtual client
 * connection of its own (serve.ts is the other end) — so a long `run` never delays a `poll` from
 * another client, and a thousand commands at once still take one socket. A command borrows a
 * virtual connection for its duration and gives it back; a few idle ones are kept per
 * subprotocol. The link is kept up by a Redialer (full-jitter backoff, src/link/redial.ts); a
 * command that finds it down dials once at once, so a remote that is back is used immediately.
 * Heartbeats through the multiplexer notice a silent network.
 *
 * A remote restart is recognised by its pid (from `hello` on each new link). Back with the same
 * token (--token-file): only a log line, its workers outlived it and were adopted. Back with a
 * new token: the state says so, and commands explain how to reconnect.
 */
import type { Channel } from "../link/channel.ts";
import { ClientWsChannel } from "../link/ws.ts";
import { Mux } from "../link/mux.ts";
import { Redialer } from "../link/redial.ts";
import { encodeWorkerFrame } from "../link/frame.ts";
import { endpointLabel, type RemoteEndpoint } from "../client/remote.ts";
import { closeError, Inbox, type Message } from "../client/inbox.ts";
import { hostPort } from "../protocol/endpoint.ts";
import { PythondError } from "../protocol/errors.ts";
import { parseError } from "../protocol/replies.ts";
import { LINK_SUBPROTOCOL } from "../protocol/version.ts";

const MAX_IDLE = 4;
const HEARTBEAT_MS = 30_000;
/** How long a `hello` may take on a fresh link before the link is given up. */
const HELLO_TIMEOUT_MS = 10_000;
/** Acknowledge a virtual connection's bytes in batches of this many. */
const ACK_BATCH = 64 << 10;
/**
 * Frames from the local client are sent in pieces of at most this many bytes (`more` on all but
 * the last): one large code body neither holds up the link's other streams nor meets the remote
 * listener's limit on a single WebSocket message (which would end the whole link).
 */
export const PIECE = 1 << 20;
const dec = new TextDecoder();

type LinkState = { kind: "up" } | { kind: "down"; reason: string } | { kind: "rejected"; reason: string };

/** How a link is dialed: the real one opens a WebSocket; tests hand in a memory channel. */
export type Dial = () => Promise<Channel>;

/** The link of one remote proxy: state, redial, heartbeat, virtual connections. */
export class ProxyLink {
  private idle = new Map<string, VirtualClient[]>();
  private state: LinkState = { kind: "down", reason: "not connected yet" };
  private remotePid?: number;
  private readonly redial: Redialer;
  private closed = false;

  /** "host:port tls", as `ls` and `OK connected` show it. */
  readonly label: string;

  constructor(
    readonly name: string,
    readonly ep: RemoteEndpoint,
    private readonly say: (msg: string) => void,
    dial?: Dial,
  ) {
    this.label = endpointLabel(ep);
    const d = dial ?? (() => dialWebSocket(ep));
    this.redial = new Redialer(() => this.openLink(d), {
      onDown: () => {
        if (this.state.kind === "up") this.state = { kind: "down", reason: "connection lost" };
        for (const pool of this.idle.values()) pool.length = 0; // their link is gone
      },
      // A rejected token stays rejected until `pyctl connect` again: no redialing (commands still
      // try once, to report it).
      retry: () => this.state.kind !== "rejected",
    });
  }

  /** What `ls` adds after "remote" when the link is not up. */
  trouble(): string {
    const s = this.state;
    return s.kind === "up" ? "" : s.kind === "rejected" ? `, token rejected: ${s.reason}` : `, down: ${s.reason}; retrying`;
  }

  /**
   * Opens an authenticated link: connect (pinning, client certificate), then `hello`, whose reply
   * proves the token was accepted and tells the remote's pid. Updates the link state.
   */
  private async openLink(dial: Dial): Promise<Mux> {
    let channel: Channel;
    try {
      channel = await dial();
    } catch (e) {
      const err = PythondError.from(e);
      this.state = { kind: "down", reason: err.message };
      throw err;
    }
    // The listener answers a bad token with one text frame, then closes: kept for the error.
    let rejection: string | undefined;
    const mux = new Mux(channel, { gone: (r) => new PythondError("daemon_unreachable", r), onText: (t) => (rejection ??= t) });
    let reply;
    try {
      reply = await within(mux.request("hello"), HELLO_TIMEOUT_MS, () => mux.close("no answer to hello"));
    } catch (e) {
      mux.close("hello failed");
      const why = rejection;
      if (why !== undefined) {
        const text = parseError(why, false).message;
        if (text.startsWith("auth failed") && !text.includes("too many")) {
          this.state = { kind: "rejected", reason: text };
          throw new PythondError("auth_failed", text);
        }
        // Any other text: a daemon that took the link for a client connection (one older than
        // proxy links answers the binary hello with `ERR binary frames are only accepted…`).
        const reason = `${this.label} does not speak ${LINK_SUBPROTOCOL} (it answered: ${text}); is it an older pythond? upgrade it`;
        this.state = { kind: "down", reason: text.startsWith("auth failed") ? text : reason };
        throw new PythondError("daemon_unreachable", text.startsWith("auth failed") ? text : reason);
      }
      this.state = { kind: "down", reason: PythondError.from(e).message };
      throw PythondError.from(e);
    }
    const pid = Number(reply.header.pid);
    if (this.remotePid !== undefined && pid !== this.remotePid) {
      this.say(`remote '${this.name}': the daemon at ${this.label} restarted (pid ${this.remotePid} -> ${pid}); link re-established`);
    }
    this.remotePid = pid;
    this.state = { kind: "up" };
    mux.heartbeat(HEARTBEAT_MS);
    return mux;
  }

  /** Connects for `pyctl connect` (the error says why not), then keeps the link up. */
  async probe(): Promise<void> {
    await this.redial.get();
    this.redial.start();
  }

  /** Brings the link up in the background (a proxy restored from its record). */
  reconnect(): void {
    this.redial.start();
  }

  /** A virtual connection for one command: an idle one, else a new one (with a clear error when impossible). */
  async take(protocol: string): Promise<VirtualClient> {
    const pool = this.idle.get(protocol) ?? [];
    while (pool.length) {
      const c = pool.pop()!;
      if (!c.closed) return c;
    }
    let mux: Mux;
    try {
      mux = await this.redial.get();
    } catch (e) {
      throw this.unavailable(PythondError.from(e));
    }
    return VirtualClient.open(mux, protocol);
  }

  private unavailable(err: PythondError): PythondError {
    const hp = hostPort(this.ep.host, this.ep.port);
    if (this.state.kind === "rejected") {
      const restarted = this.remotePid !== undefined;
      return new PythondError(
        "auth_failed",
        `remote '${this.name}' (${this.label}) rejected the token (${this.state.reason})` +
          (restarted ? ": the remote daemon was restarted with a new token" : "") +
          ` -- reconnect with: pyctl connect ${this.name} ${hp} --token-file FILE${this.ep.tls ? " --tls" : ""}` +
          " (a remote started with --token-file keeps its token across restarts)",
      );
    }
    return new PythondError("daemon_unreachable", `remote '${this.name}' (${this.label}) is unreachable: ${err.message} -- retrying in the background`);
  }

  /** Back to the pool (a few per subprotocol); the rest are closed. */
  give(protocol: string, c: VirtualClient): void {
    if (this.closed || c.closed) return c.close();
    const pool = this.idle.get(protocol) ?? [];
    this.idle.set(protocol, pool);
    if (pool.length >= MAX_IDLE) return c.close();
    pool.push(c);
  }

  close(): void {
    this.closed = true;
    for (const pool of this.idle.values()) for (const c of pool) c.close();
    this.idle.clear();
    this.redial.close();
  }
}

/**
 * Sends a frame of a virtual connection (`t` text, `b` binary) in pieces of at most PIECE bytes,
 * `more` on all but the last: both ends of a proxy link use it, and reassemble.
 */
export function sendInPieces(send: (op: string, fields: Record<string, unknown>, body: Uint8Array | string) => void, frame: string | Uint8Array): void {
  const op = typeof frame === "string" ? "t" : "b";
  if (frame.length <= PIECE / 4) return send(op, {}, frame); // surely small: no copy
  const bytes = typeof frame === "string" ? Buffer.from(frame) : frame;
  let off = 0;
  for (; off + PIECE < bytes.length; off += PIECE) send(op, { more: true }, bytes.subarray(off, off + PIECE));
  send(op, {}, bytes.subarray(off));
}

/** Dials the remote's listener for a link: pinning, client certificate, token (client/remote.ts). */
async function dialWebSocket(ep: RemoteEndpoint): Promise<Channel> {
  const { openRemote } = await import("../client/remote.ts");
  const { ws } = await openRemote(ep, [LINK_SUBPROTOCOL]);
  return ClientWsChannel.wrap(ws); // before any message can arrive: they come as later events
}

function within<T>(p: Promise<T>, ms: number, onTimeout: () => void): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout();
      reject(new PythondError("timeout", `no answer within ${ms / 1000}s`));
    }, ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/**
 * One virtual client connection on a proxy's link, with the Client API the proxy's relaying uses
 * (send, next, nextText, close): a queue of the remote's replies. What the relaying takes is
 * acknowledged (credits), so the remote's cell runs at the pace of the proxy's own client.
 */
export class VirtualClient {
  private inbox = new Inbox();
  private owed = 0;
  private rid = 0;

  private constructor(private readonly mux: Mux) {}

  static open(mux: Mux, protocol: string): VirtualClient {
    const c = new VirtualClient(mux);
    const pieces: Uint8Array[] = [];
    c.rid = mux.open((rid) => encodeWorkerFrame({ op: "open", rid, proto: protocol }), {
      frame: (h, body) => {
        if ((h.op === "t" || h.op === "b") && (h.more || pieces.length)) {
          pieces.push(body);
          if (h.more) return;
          body = Buffer.concat(pieces);
          pieces.length = 0;
        }
        if (h.op === "t") c.inbox.push({ text: dec.decode(body) });
        else if (h.op === "b") c.inbox.push({ binary: body });
        else if (h.op === "end") c.inbox.end(closeError(Number(h.code ?? 0), h.reason ? String(h.reason) : ""));
      },
      lost: (reason) => c.inbox.end(new PythondError("daemon_unreachable", reason)),
    });
    return c;
  }

  get closed(): boolean {
    return this.inbox.endedWith !== undefined;
  }

  send(frame: string | Uint8Array): void {
    if (this.inbox.endedWith) throw this.inbox.endedWith;
    sendInPieces((op, fields, body) => this.mux.send({ op, rid: this.rid, ...fields }, body), frame);
  }

  next(): Promise<Message> {
    return this.inbox.next();
  }

  nextText(): Promise<string> {
    return this.inbox.nextText();
  }

  /** The relaying took `n` more bytes (its client's buffer has room): credit for the remote. */
  took(n: number): void {
    this.owed += n;
    if (this.owed < ACK_BATCH || this.closed) return;
    this.mux.ack(this.rid, this.owed);
    this.owed = 0;
  }

  close(): void {
    if (this.closed) return;
    this.mux.cancel(this.rid);
    this.inbox.end(new PythondError("daemon_unreachable", "closed"));
  }
}
