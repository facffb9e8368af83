/**
 * The daemon: a router on a Unix socket (WebSocket), holding no Python state.
 *
 * Start-up race (two daemons at once, or one left dead by SIGKILL): take the start lock first,
 * then probe the socket; a socket that answers belongs to a live daemon (refuse), one that
 * refuses connections is stale (unlink it). Without the lock, two starters could both see a
 * stale socket, both unlink, and one would steal the other's socket (the original's bug).
 *
 * Signals end only the daemon: workers outlive it and the next daemon adopts them
 * (DESIGN decision 1). `pyctl stop` ends the sessions too, unless --keep-sessions.
 */
import { rmSync, unlinkSync, writeFileSync } from "node:fs";
import type { ServerWebSocket } from "bun";
import { PythondError } from "../protocol/errors.ts";
import { chooseSubprotocol, LINK_SUBPROTOCOL, VERSION } from "../protocol/version.ts";
import { ServerWsChannel } from "../link/ws.ts";
import { restartMarker } from "../paths.ts";
import { prepareHome, prepareRuntime } from "./runtime-checks.ts";

/** `pyctl restart` under a service manager: the exit status that asks it to start us again. */
export const SUPERVISED_RESTART_EXIT = 75;
import { AccessLog, flushAccessLogs } from "./access-log.ts";
import { ClientConn } from "./conn.ts";
import { router, type DaemonContext } from "./dispatch.ts";
import type { RemoteAccess } from "../ingress/listen-tcp.ts";
import type { RemoteOptions } from "../ingress/remote-setup.ts";
import { InflightBudget, withBudget } from "./inflight.ts";
import { acquireStartLock } from "./lock.ts";
import { reapInherited } from "./reap.ts";
import { daemonOut, type DaemonOut, type LogLevel } from "./log-out.ts";
import { Proxies } from "../proxy/proxy.ts";
import { serveLink } from "../proxy/serve.ts";
import { Registry } from "../sessions/registry.ts";

export interface DaemonOptions {
  socket: string;
  /** Largest frame accepted, bytes (default 64 MiB of body plus room for the command line). */
  maxFrame?: number;
  /** Bound on large request bodies in flight across all connections, bytes (src/daemon/inflight.ts). */
  maxInflight?: number;
  /** Default --idle-timeout for new sessions, seconds. */
  idleTimeout?: number;
  /** The arguments this daemon was started with (after `daemon`), for `pyctl restart`. */
  argv?: string[];
  /** TCP/TLS access (--listen, local TCP mode); see listen-tcp.ts. */
  remote?: RemoteOptions;
  /** What goes to stderr (log-out.ts); access.log keeps everything. */
  logLevel?: LogLevel;
  /** Fleet hub: seconds between heartbeats to each node (--heartbeat; default 10). */
  heartbeat?: number;
  /** The role name `pyctl restart` starts again with (default "daemon"; a node: "join"). */
  role?: string;
  /** Added to the environment `pyctl restart` starts us with (a node's join token: not in argv). */
  restartEnv?: Record<string, string>;
  /**
   * A node (`pythond join`): called once the daemon serves; dials the hub. Its rejection (a
   * refused first join) stops the daemon (sessions live on) and is thrown from runDaemon.
   */
  node?: (ctx: DaemonContext, nextConnId: () => number, say: (msg: string) => void) => Promise<{ close(): void }>;
}

export const DEFAULT_MAX_FRAME = 64 * 1024 * 1024 + 4096;

/**
 * `caller`, `peer` and `connId` come from the TCP/TLS bridge for remote clients (listen-tcp.ts).
 * A client connection has `conn`; a proxy's link (pythond.link.1) has `link` (src/proxy/serve.ts).
 */
type WSData = { conn?: ClientConn; link?: ServerWsChannel<WSData>; protocol: string; peer: string; caller: "local" | "remote"; connId?: number };
type WS = ServerWebSocket<WSData>;

let out: DaemonOut | undefined;

function say(msg: string): void {
  flushAccessLogs(); // the ACCESS lines before it stay before it on stderr
  if (out) out.say(msg);
  else process.stderr.write(`pythond: ${msg}\n`);
}

async function probe(sock: string): Promise<"live" | "stale" | "absent"> {
  try {
    const s = await Bun.connect({ unix: sock, socket: { data() {} } });
    s.end();
    return "live";
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === "ENOENT" ? "absent" : "stale";
  }
}

export async function runDaemon(opts: DaemonOptions): Promise<void> {
  const sock = opts.socket;
  out = await daemonOut(opts.logLevel);
  reapInherited(); // workers a previous image of this process started (restart in place)
  const runtime = prepareRuntime(sock);
  const homeProblem = prepareHome();
  const lock = acquireStartLock(runtime);
  if (!lock) throw new PythondError("daemon_running", `daemon already running at ${sock}`);
  const state = await probe(sock);
  if (state === "live") {
    lock.release();
    throw new PythondError("daemon_running", `daemon already running at ${sock}`);
  }
  if (state === "stale") unlinkSync(sock);

  let remote: RemoteAccess | undefined;
  if (opts.remote) {
    try {
      const { prepareRemote } = await import("../ingress/remote-setup.ts"); // certificate code only when asked for
      remote = await prepareRemote(opts.remote, { say, print: (l) => process.stderr.write(l + "\n") });
    } catch (e) {
      lock.release();
      throw e;
    }
  }
  const log = new AccessLog(runtime, out.mirror);
  const proxies = new Proxies(runtime, log, say);
  let fleet: import("../fleet/hub/hub.ts").FleetHub | undefined;
  let node: { close(): void } | undefined;
  if (remote && !remote.opts.localTcp) {
    // Every daemon with a listener is a hub: nodes may join it (with a token from pyctl join-token).
    const { FleetHub } = await import("../fleet/hub/hub.ts");
    fleet = new FleetHub({ log, say, penalties: remote.penalties, heartbeat: opts.heartbeat });
    remote.fleet = fleet;
  }
  const marker = restartMarker(runtime);
  const registry = new Registry(runtime, (name, message) => {
    say(`session ${name}: ${message}`);
    log.write("session", { session: name, status: message.startsWith("adopted") ? "ok" : "error", event_detail: message });
  });
  let nextConn = 1;
  let stopping = false;
  // eslint-disable-next-line prefer-const
  let server: ReturnType<typeof Bun.serve>;

  const shutdown = async (keepSessions: boolean) => {
    if (stopping) return;
    stopping = true;
    say(keepSessions ? "stopping (sessions keep running)" : "stopping (ending sessions)");
    if (keepSessions) registry.detachAll();
    else await registry.killAll();
    proxies.closeAll(!keepSessions);
    node?.close();
    fleet?.closeAll();
    remote?.stop();
    server.stop(true);
    lock.release();
    process.exit(0);
  };
  /**
   * `pyctl restart` (and in-place upgrades): this daemon lets go of everything (sessions live on),
   * then starts the binary found at its own path again, with the same arguments and stdio. Clients
   * that find no daemon while the `restarting` marker exists retry for a few seconds.
   */
  const restart = () => {
    if (stopping) return;
    stopping = true;
    say("restarting (sessions keep running)");
    writeFileSync(marker, String(process.pid), { mode: 0o600 });
    registry.detachAll();
    proxies.closeAll(false);
    node?.close();
    fleet?.closeAll();
    remote?.stop();
    server.stop(true);
    lock.release();
    // Under a service manager (our units set PYTHOND_SUPERVISED=1), starting the successor
    // ourselves would leave it outside the service; exit 75 and the manager starts it
    // (systemd RestartForceExitStatus=75, launchd KeepAlive on a non-zero exit).
    if (process.env.PYTHOND_SUPERVISED === "1") process.exit(SUPERVISED_RESTART_EXIT);
    const compiled = Bun.main.startsWith("/$bunfs/") || Bun.main.startsWith("B:/~BUN/");
    // After an upgrade that renamed a new file over ours (install.sh, package managers), Linux
    // reports our own, now unlinked, file as "<path> (deleted)": the new binary is at <path>.
    // The role (daemon or join) is kept so a fleet node restarts as a node.
    const self = process.execPath.replace(/ \(deleted\)$/, "");
    const cmd = [self, ...(compiled ? [] : [Bun.main]), opts.role ?? "daemon", ...(opts.argv ?? [])];
    const env = { ...process.env, ...opts.restartEnv };
    flushAccessLogs();
    // In place: the same process id, terminal, process group and parent, so a foreground daemon
    // stays in the foreground (Ctrl-C reaches it) and a supervisor sees no exit. Bun implements
    // Node's process.execve (execve(2)); where it is missing (Windows), start a successor.
    const execve = (process as { execve?: (file: string, args: string[], env: NodeJS.ProcessEnv) => never }).execve;
    if (execve && process.platform !== "win32") {
      try {
        execve(self, cmd, env);
      } catch (e) {
        say(`restart in place failed (${(e as Error).message}); starting a new process instead`);
      }
    }
    const next = Bun.spawn(cmd, { stdio: ["ignore", "inherit", "inherit"], detached: true, env });
    next.unref();
    process.exit(0);
  };
  const ctx: DaemonContext = {
    registry,
    log,
    socket: sock,
    proxies,
    sources: fleet ? [proxies, fleet] : [proxies],
    endpoints: remote?.endpoints ?? [],
    idleTimeout: opts.idleTimeout,
    fleet,
    stop: (keep) => void setTimeout(() => void shutdown(keep), 10), // let the reply leave first
    restart: () => {
      // A client connecting from now on must find no daemon (and the marker: it then waits for the
      // next one), not this one, which is about to close every connection. The reply to `restart`
      // still leaves on its open connection.
      writeFileSync(marker, String(process.pid), { mode: 0o600 });
      server.stop(false);
      setTimeout(restart, 10);
    },
  };

  const route = router(ctx);
  await registry.adoptAll(); // before listening, so the first `ls` already shows them
  proxies.adoptAll(registry);
  const maxFrame = opts.maxFrame ?? DEFAULT_MAX_FRAME;
  const inflight = new InflightBudget(opts.maxInflight);
  const budgeted = withBudget(inflight, route, (c, cmd) =>
    log.write("result", { conn_id: c.id, peer: c.peer, cmd: cmd.split(" ")[0]!.slice(0, 32), session: (cmd.split(" ")[1] ?? "").slice(0, 64), status: "error", event_detail: "busy" }),
  );
  const oldMask = process.umask(0o177);
  try {
    server = Bun.serve<WSData, never>({
      unix: sock,
      fetch(req, srv) {
        const offered = (req.headers.get("sec-websocket-protocol") ?? "").split(",").map((s) => s.trim());
        const chosen = chooseSubprotocol(offered);
        const headers = chosen ? { "Sec-WebSocket-Protocol": chosen } : undefined;
        // Offered none of ours: select none (RFC 6455 4.2.2). Left in the request, Bun would echo
        // the client's first offer back while the connection speaks pythond.0.4.
        if (!chosen) req.headers.delete("sec-websocket-protocol");
        const bridged = remote?.fromBridge(req);
        const who = bridged ?? { peer: "", caller: "local" as const };
        if (srv.upgrade(req, { data: { protocol: chosen, ...who }, headers })) return undefined;
        return new Response(`pythond ${VERSION}: WebSocket only\n`, { status: 426 });
      },
      websocket: {
        maxPayloadLength: maxFrame,
        backpressureLimit: 2 ** 31,
        closeOnBackpressureLimit: false,
        idleTimeout: 120,
        sendPings: true,
        open(ws: WS) {
          const id = (ws.data.connId ??= nextConn++);
          if (ws.data.protocol === LINK_SUBPROTOCOL) {
            const link = (ws.data.link = new ServerWsChannel(ws));
            serveLink(link, { peer: ws.data.peer, caller: ws.data.caller, nextConnId: () => nextConn++, log, router: route, maxFrame });
            log.write("connect", { conn_id: id, peer: ws.data.peer });
            return;
          }
          const conn = new ClientConn(id, ws.data.peer, ws.data.caller, ws.data.protocol, wsReply(ws), budgeted);
          conn.dropped = (f) => inflight.release(f.charCodeAt(0) === 0 ? 0 : f.length); // stand-ins were never counted
          ws.data.conn = conn;
          log.write("connect", { conn_id: conn.id, peer: conn.peer });
        },
        message(ws: WS, msg) {
          if (ws.data.link) return ws.data.link.deliver(msg);
          const conn = ws.data.conn!;
          if (typeof msg === "string") {
            conn.enqueue(inflight.admit(msg));
            return;
          }
          if (conn.attached) conn.attached.input(msg);
          else conn.reply.text(new PythondError("binary_frame", "binary frames are only accepted while attached").toFrame(conn.codes));
        },
        drain(ws: WS) {
          ws.data.link?.drained();
          ws.data.conn?.drained();
        },
        close(ws: WS, code, reason) {
          if (ws.data.link) {
            ws.data.link.closed(reason || `connection closed (code ${code})`);
            log.write("disconnect", { conn_id: ws.data.connId ?? 0, peer: ws.data.peer });
            return;
          }
          const conn = ws.data.conn;
          if (!conn) return;
          conn.closed();
          log.write("disconnect", { conn_id: conn.id, peer: conn.peer });
        },
      },
    });
  } finally {
    process.umask(oldMask);
  }
  if (remote) {
    try {
      await remote.listen({ innerSocket: sock, log, nextConnId: () => nextConn++, say });
    } catch (e) {
      server.stop(true);
      lock.release();
      throw e;
    }
  }
  process.on("SIGTERM", () => void shutdown(true));
  process.on("SIGINT", () => void shutdown(true));
  process.on("SIGHUP", () => void shutdown(true));
  rmSync(marker, { force: true });
  if (fleet) {
    const { raiseFdLimit, fdLimitMessage } = await import("../fleet/hub/fdlimit.ts");
    const l = raiseFdLimit();
    if (l) say(fdLimitMessage(l));
  }
  say(`${VERSION} listening on ${sock} (pid ${process.pid})`);
  if (homeProblem) say(`history disabled for every session: ${homeProblem}`);
  if (opts.node) {
    try {
      node = await opts.node(ctx, () => nextConn++, say);
    } catch (e) {
      // A refused first join: end the daemon (sessions live on), then say why (the CLI prints it).
      stopping = true;
      registry.detachAll();
      fleet?.closeAll();
      remote?.stop();
      server.stop(true);
      lock.release();
      const env = { ...process.env, ...opts.restartEnv };
    flushAccessLogs();
      throw e;
    }
  }
}

/**
 * Replies to one client. What a handler sends in one turn of the event loop goes out corked, in
 * one write: a quick cell's `CELL`, output and `OK` arrive from the worker together, and the
 * client then wakes once for them instead of three times.
 */
function wsReply(ws: WS) {
  let pending: Array<string | Uint8Array> = [];
  let pendingBytes = 0;
  const flush = () => {
    const batch = pending;
    pending = [];
    pendingBytes = 0;
    if (ws.readyState !== 1 || batch.length === 0) return;
    if (batch.length === 1) ws.send(batch[0]!);
    else
      ws.cork(() => {
        for (const m of batch) ws.send(m);
      });
  };
  const queue = (m: string | Uint8Array) => {
    if (pending.length === 0) queueMicrotask(flush);
    pending.push(m);
    pendingBytes += m.length;
  };
  return {
    text: queue,
    binary: queue,
    buffered: () => ws.getBufferedAmount() + pendingBytes,
    close: (code: number, reason: string) => {
      flush();
      ws.close(code, reason);
    },
    get open() {
      return ws.readyState === 1;
    },
  };
}
