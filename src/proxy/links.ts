/**
 * The links of a remote proxy (proxy.ts) to its daemon: a small pool of authenticated
 * connections per subprotocol. A command borrows one for its duration (so a long `run` never
 * delays a `poll` from another client) and gives it back. One idle link is always kept open;
 * when it drops, it is re-established in the background with jittered backoff, and a command that
 * finds no link tries once at once, so a remote that is back is used immediately. A heartbeat
 * notices a silent network.
 *
 * A remote restart is recognised by its pid (from `hello` on each new link). Back with the same
 * token (--token-file): only a log line, its workers outlived it and were adopted. Back with a
 * new token: the state says so, and commands explain how to reconnect.
 */
import { Client } from "../client/connect.ts";
import { endpointLabel, type RemoteEndpoint } from "../client/remote.ts";
import { hostPort } from "../protocol/endpoint.ts";
import { PythondError } from "../protocol/errors.ts";
import { SUBPROTOCOL } from "../protocol/version.ts";

const MAX_IDLE = 4;
const HEARTBEAT_MS = 30_000;
/** How long a `hello` may take on a fresh link or at a heartbeat before the link is given up. */
const HELLO_TIMEOUT_MS = 10_000;

type LinkState = { kind: "up" } | { kind: "down"; reason: string } | { kind: "rejected"; reason: string };

/** The links of one remote proxy: pool, state, reconnection, heartbeat. */
export class LinkPool {
  private idle = new Map<string, Client[]>();
  private state: LinkState = { kind: "down", reason: "not connected yet" };
  private remotePid?: number;
  private attempt = 0;
  private retryTimer?: ReturnType<typeof setTimeout>;
  private heartbeat?: ReturnType<typeof setInterval>;
  private closed = false;

  /** "host:port tls", as `ls` and `OK connected` show it. */
  readonly label: string;

  constructor(
    readonly name: string,
    readonly ep: RemoteEndpoint,
    private readonly say: (msg: string) => void,
  ) {
    this.label = endpointLabel(ep);
  }

  /** What `ls` adds after "remote" when the link is not up. */
  trouble(): string {
    const s = this.state;
    return s.kind === "up" ? "" : s.kind === "rejected" ? `, token rejected: ${s.reason}` : `, down: ${s.reason}; retrying`;
  }

  /**
   * Opens an authenticated link: connect (pinning, client certificate), then `hello`, whose
   * reply proves the token was accepted and tells the remote's pid. Updates the link state.
   */
  private async openLink(protocol: string): Promise<Client> {
    let client: Client;
    try {
      client = await Client.open({ remote: this.ep, protocols: [protocol], explain: false });
    } catch (e) {
      const err = PythondError.from(e);
      this.state = { kind: "down", reason: err.message };
      throw err;
    }
    let reply: string;
    try {
      client.send("hello");
      reply = await answerWithin(client, HELLO_TIMEOUT_MS);
    } catch (e) {
      client.close();
      this.state = { kind: "down", reason: PythondError.from(e).message };
      throw PythondError.from(e);
    }
    if (reply.startsWith("ERR ")) {
      client.close();
      const why = reply.slice(4);
      if (why.startsWith("auth failed") && !why.includes("too many")) {
        this.state = { kind: "rejected", reason: why };
        throw new PythondError("auth_failed", why);
      }
      this.state = { kind: "down", reason: why };
      throw new PythondError("daemon_unreachable", why);
    }
    const pid = (JSON.parse(reply) as { pid?: number }).pid;
    if (this.remotePid !== undefined && pid !== this.remotePid) {
      this.say(`remote '${this.name}': the daemon at ${this.label} restarted (pid ${this.remotePid} -> ${pid}); link re-established`);
    }
    this.remotePid = pid;
    this.state = { kind: "up" };
    this.attempt = 0;
    this.startHeartbeat();
    return client;
  }

  /** Connects for `pyctl connect`; keeps the link as the first idle one. */
  async probe(): Promise<void> {
    this.give(SUBPROTOCOL, await this.openLink(SUBPROTOCOL));
  }

  /** A link for one command: an idle one, else a new one (with a clear error when impossible). */
  async take(protocol: string): Promise<Client> {
    const pool = this.idle.get(protocol) ?? [];
    while (pool.length) {
      const c = pool.pop()!;
      c.onClosed = undefined; // borrowed: its end is the borrower's business, not a lost link
      if (!c.closed) return c;
    }
    try {
      return await this.openLink(protocol);
    } catch (e) {
      this.scheduleReconnect();
      throw this.unavailable(PythondError.from(e));
    }
  }

  private unavailable(err: PythondError): PythondError {
    const hp = hostPort(this.ep.host, this.ep.port);
    if (this.state.kind === "rejected") {
      const restarted = this.remotePid !== undefined;
      return new PythondError(
        "auth_failed",
        `remote '${this.name}' (${this.label}) rejected the token (${this.state.reason})` +
          (restarted ? ": the remote daemon was restarted with a new token" : "") +
          ` -- reconnect with: pyctl connect ${this.name} ${hp} <token>${this.ep.tls ? " --tls" : ""}` +
          " (a remote started with --token-file keeps its token across restarts)",
      );
    }
    return new PythondError("daemon_unreachable", `remote '${this.name}' (${this.label}) is unreachable: ${err.message} -- retrying in the background`);
  }

  /** Back to the pool; watches it so a dropped idle link is noticed and re-established. */
  give(protocol: string, c: Client): void {
    if (this.closed || c.closed) return c.close();
    const pool = this.idle.get(protocol) ?? [];
    this.idle.set(protocol, pool);
    if (pool.length >= MAX_IDLE) return c.close();
    pool.push(c);
    c.onClosed = () => {
      const i = pool.indexOf(c);
      if (i >= 0) pool.splice(i, 1);
      if (this.closed) return;
      if (this.state.kind === "up") this.state = { kind: "down", reason: "connection lost" };
      this.scheduleReconnect();
    };
  }

  private hasIdle(): boolean {
    for (const pool of this.idle.values()) if (pool.some((c) => !c.closed)) return true;
    return false;
  }

  /** Brings the idle link up in the background (a proxy restored from its record). */
  reconnect(): void {
    this.scheduleReconnect();
  }

  /** Keeps one link open: reconnects with jittered exponential backoff (0.5 s .. 30 s). */
  private scheduleReconnect(): void {
    if (this.closed || this.retryTimer || this.state.kind === "rejected" || this.hasIdle()) return;
    const delay = this.attempt === 0 ? 0 : Math.min(30_000, 500 * 2 ** (this.attempt - 1)) * (0.5 + Math.random() / 2);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (this.closed || this.hasIdle()) return;
      this.openLink(SUBPROTOCOL).then(
        (c) => this.give(SUBPROTOCOL, c),
        () => {
          this.attempt++;
          this.scheduleReconnect();
        },
      );
    }, delay);
  }

  /** Every HEARTBEAT_MS, an idle link answers `hello` or is dropped (a silent network, a frozen host). */
  private startHeartbeat(): void {
    if (this.heartbeat) return;
    this.heartbeat = setInterval(() => {
      const c = this.idle.get(SUBPROTOCOL)?.pop();
      if (!c) return;
      c.onClosed = undefined;
      c.send("hello");
      answerWithin(c, HELLO_TIMEOUT_MS).then(
        (reply) => {
          const pid = (JSON.parse(reply) as { pid?: number }).pid;
          if (pid !== this.remotePid) this.say(`remote '${this.name}': the daemon at ${this.label} is now pid ${pid}`);
          this.remotePid = pid;
          this.give(SUBPROTOCOL, c);
        },
        () => {
          c.close();
          this.state = { kind: "down", reason: "no answer to the heartbeat" };
          this.scheduleReconnect();
        },
      );
    }, HEARTBEAT_MS);
  }

  close(): void {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.heartbeat) clearInterval(this.heartbeat);
    for (const pool of this.idle.values()) for (const c of pool) c.close();
    this.idle.clear();
  }
}

/** The next text frame of `c`, or a timeout error after `ms`. */
function answerWithin(c: Client, ms: number): Promise<string> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new PythondError("timeout", `no answer within ${ms / 1000}s`)), ms);
  });
  return Promise.race([c.nextText(), timeout]).finally(() => clearTimeout(timer));
}
