/**
 * Connecting to a daemon: `ws+unix://<socket>` locally; TCP/TLS (PYTHOND_HOST, local TCP mode,
 * proxy links) through remote.ts, imported only then.
 * A Client is a queue of incoming messages over one WebSocket, so callers can `await next()`
 * in order; it never prints. Kept free of heavy imports: this is the `pysh run` hot path.
 */
import { PythondError } from "../protocol/errors.ts";
import { CLIENT_OFFER, SUBPROTOCOL_CODES } from "../protocol/version.ts";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { restartMarker, runtimeDir, socketExplicit, socketPath } from "../paths.ts";
import { checkDaemonSocket } from "../secure-fs.ts";
import type { RemoteEndpoint } from "./remote.ts";
import { closeError, Inbox, type Message } from "./inbox.ts";

const RESTART_GRACE_MS = 10_000;

export type { Message } from "./inbox.ts";

export class Client {
  private inbox = new Inbox();
  /** Called once when the connection closes (proxy links watch their idle connections). */
  onClosed?: (err: PythondError) => void;

  private constructor(
    private readonly ws: WebSocket,
    readonly endpoint: string,
    /** Rewrites the first text frame (a remote daemon's terse auth rejection) for people. */
    private explain?: (text: string) => string,
  ) {
    ws.binaryType = "uint8array" as WebSocket["binaryType"];
    ws.onmessage = (ev) => {
      let m: Message = typeof ev.data === "string" ? { text: ev.data } : { binary: ev.data as Uint8Array };
      if (this.explain && "text" in m) m = { text: this.explain(m.text) };
      this.explain = undefined;
      this.inbox.push(m);
    };
    ws.onclose = (ev) => {
      const err = closeError(ev.code, ev.reason);
      this.inbox.end(err);
      this.onClosed?.(err);
    };
  }

  /**
   * The local daemon's Unix socket; or TCP/TLS when `remote` is given, or when PYTHOND_HOST or the
   * local TCP mode chooses it (`remote: null` forces the socket). `explain: false` keeps replies
   * verbatim (proxy links relay them).
   */
  static async open(
    opts: { socket?: string; protocols?: string[]; remote?: RemoteEndpoint | null; explain?: boolean; noWait?: boolean } = {},
  ): Promise<Client> {
    const tcp = process.env.PYTHOND_HOST || process.platform === "win32" || process.env.PYTHOND_LOCAL_TCP === "1";
    if (opts.remote || (opts.remote === undefined && !opts.socket && tcp)) return Client.openTcp(opts);
    const sock = opts.socket ?? socketPath();
    const deadline = Date.now() + RESTART_GRACE_MS;
    for (;;) {
      // Before a byte goes out: the socket and its directories must be ours (src/secure-fs.ts).
      checkDaemonSocket(sock, socketExplicit());
      const ws = new WebSocket(`ws+unix://${sock}`, opts.protocols ?? CLIENT_OFFER);
      const ok = await new Promise<boolean>((resolve) => {
        ws.onopen = () => resolve(true);
        ws.onerror = () => resolve(false);
      });
      if (ok) return new Client(ws, sock);
      // A daemon restarting in place leaves a marker, and one starting (a supervisor's restart
      // after a crash: it adopts the sessions before it listens) holds the start lock: wait for
      // it instead of failing.
      if (opts.noWait || Date.now() > deadline || !daemonComing(runtimeDir(sock))) {
        throw new PythondError("daemon_unreachable", `no daemon at ${sock} -- start one with: pythond daemon (or: pyctl start)`);
      }
      await Bun.sleep(20);
    }
  }

  /** TCP/TLS: remote.ts (pinning, client certificate, clear errors) is loaded only here. */
  private static async openTcp(opts: { protocols?: string[]; remote?: RemoteEndpoint | null; explain?: boolean }): Promise<Client> {
    const r = await import("./remote.ts");
    const ep = opts.remote ?? r.remoteFromEnv()!;
    const { ws, presented } = await r.openRemote(ep, opts.protocols ?? CLIENT_OFFER);
    const explain = opts.explain === false ? undefined : (t: string) => r.explainRejection(ep, presented, t);
    return new Client(ws, r.endpointLabel(ep), explain);
  }

  /** The daemon answers `ERR <code>: <message>` (pythond.1+codes); replies.ts parses either form. */
  get codes(): boolean {
    return this.ws.protocol === SUBPROTOCOL_CODES;
  }

  get closed(): boolean {
    return this.inbox.endedWith !== undefined;
  }

  send(frame: string | Uint8Array): void {
    if (this.inbox.endedWith) throw this.inbox.endedWith;
    this.ws.send(frame);
  }

  next(): Promise<Message> {
    return this.inbox.next();
  }

  nextText(): Promise<string> {
    return this.inbox.nextText();
  }

  close(): void {
    this.ws.close();
  }
}

/** A daemon is on its way: restarting in place, or holding the start lock (src/daemon/lock.ts). */
function daemonComing(runtime: string): boolean {
  if (existsSync(restartMarker(runtime))) return true;
  let pid = 0;
  try {
    pid = Number(readFileSync(join(runtime, "daemon.lock"), "utf8").trim());
  } catch {
    return false;
  }
  if (!(pid > 0)) return false;
  try {
    process.kill(pid, 0); // the lock holder writes its pid; a dead one leaves it behind
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat[stat.lastIndexOf(")") + 2] !== "Z";
  } catch {
    return true;
  }
}
