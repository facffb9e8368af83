/**
 * The router: every text frame of every connection takes this one path —
 *
 *   prepare  parse (protocol/frame.ts) and check against the command table (protocol/commands.ts),
 *            once per frame; a plain `run <name>` of a local session may overlap (conn.ts)
 *   handle   check the caller against the command's callers; resolve the target once (a local
 *            session, a session behind a proxy; `a/b` through proxy or node `a`); call the
 *            command's handler with it; reply `ERR …` for whatever it throws; access-log it all
 *
 * Handlers of session commands call one door of their Target (target.ts); the daemon's own
 * commands (ls, hello, stop, restart, connect, disconnect, detach, nodes, node-forget) are
 * answered here.
 */
import { CLIENT_CALLERS, specOf, toRequest, type CommandName, type Request } from "../protocol/commands.ts";
import { PythondError } from "../protocol/errors.ts";
import { parseFrame } from "../protocol/frame.ts";
import { checkName } from "../protocol/names.ts";
import { okReply } from "../protocol/replies.ts";
import { PROTOCOL_VERSION, VERSION } from "../protocol/version.ts";
import type { Proxies } from "../proxy/proxy.ts";
import { detachSession } from "../sessions/attach.ts";
import type { Registry } from "../sessions/registry.ts";
import { LocalTarget } from "../sessions/target.ts";
import type { AccessLog } from "./access-log.ts";
import type { ClientConn, Prepared, Router } from "./conn.ts";
import { splitTargetName, type Status, type Target, type TargetSource } from "./target.ts";
import type { FleetHub } from "../fleet/hub/hub.ts";
import { unresponsiveWhy } from "../sessions/health.ts";

export interface DaemonContext {
  registry: Registry;
  log: AccessLog;
  socket: string;
  /** Remote proxies (`connect`): names that stand for sessions of other daemons. */
  proxies: Proxies;
  /** Rooms holding sessions behind names, asked in turn (proxies; the fleet's nodes next). */
  sources: TargetSource[];
  /** TCP/TLS endpoints this daemon listens on (`tls://host:port`), for `hello`. */
  endpoints: string[];
  stop(keepSessions: boolean): void;
  /** Ends this daemon (sessions live on) and starts the binary again in its place. */
  restart(): void;
  /** Daemon-wide default for sessions' --idle-timeout (seconds), if any. */
  idleTimeout?: number;
  /** The fleet hub (every daemon with a listener is one; also in `sources`): nodes' names. */
  fleet?: FleetHub;
}

type Handler = (ctx: DaemonContext, conn: ClientConn, req: Request, target: Target) => Promise<Status> | Status;

const json = (v: unknown) => JSON.stringify(v);

export const HANDLERS: Record<CommandName, Handler> = {
  new: (_ctx, conn, req, t) => t.request(conn, req),
  run: (_ctx, conn, req, t) => t.run(conn, req),
  fire: (_ctx, conn, req, t) => t.request(conn, req),
  fork: (_ctx, conn, req, t) => t.request(conn, req),
  poll: (_ctx, conn, req, t) => t.request(conn, req),
  wait: (_ctx, conn, req, t) => t.run(conn, req),
  int: (_ctx, conn, req, t) => t.request(conn, req),
  status: (_ctx, conn, req, t) => t.request(conn, req),
  vars: (_ctx, conn, req, t) => t.request(conn, req),
  complete: (_ctx, conn, req, t) => t.request(conn, req),
  kill: (_ctx, conn, req, t) => t.request(conn, req),
  attach: (_ctx, conn, req, t) => t.attach(conn, req),
  resize: (_ctx, conn, req, t) => t.attach(conn, req),
  ls(ctx, conn, req) {
    if (req.args[0] !== undefined) {
      // `ls worker-1`: that node's own listing.
      if (!ctx.fleet) throw new PythondError("no_node", `no node '${req.args[0]}' -- this daemon is not a hub (it has no --listen)`);
      return ctx.fleet.nodeTarget(req.args[0]).relay(conn, req, "ls");
    }
    const lines = ctx.registry.list().map((s) => {
      const stuck = s.state === "alive" ? unresponsiveWhy(s) : undefined;
      if (stuck) return `  ${s.name}: unresponsive pid=${s.pid} (${stuck})`;
      if (s.state === "alive") return `  ${s.name}: alive pid=${s.pid} (pty)`;
      if (s.state === "starting") return s.reason ? `  ${s.name}: unresponsive pid=${s.pid} (${s.reason})` : `  ${s.name}: starting`;
      if (s.state === "incompatible") return `  ${s.name}: incompatible pid=${s.pid} (${s.reason})`;
      return `  ${s.name}: dead (${s.reason ?? "reason unknown"})`;
    });
    lines.push(...ctx.proxies.list().map((p) => p.lsLine()));
    if (ctx.fleet) lines.push(...ctx.fleet.registry.lsLines());
    conn.reply.text(lines.length ? lines.join("\n") : "(no sessions)");
    return "ok";
  },
  nodes(ctx, conn, req) {
    if (!ctx.fleet) {
      conn.reply.text(req.opts.json ? "[]" : "(this daemon is not a hub: start it with --listen HOST:PORT)");
      return "ok";
    }
    conn.reply.text(req.opts.json ? json(ctx.fleet.registry.json()) : ctx.fleet.registry.table());
    return "ok";
  },
  "node-forget"(ctx, conn, req) {
    const id = req.args[0]!;
    if (!ctx.fleet?.forget(id)) throw new PythondError("no_node", `no node '${id}' is enrolled here`);
    conn.reply.text(okReply(`forgot node ${id}`));
    return "ok";
  },
  detach: (ctx, conn) => detachSession(ctx.log, conn),
  // Node services (issue 19): a tunnel to a node, and sh on many nodes from here (src/fleet/io/).
  async io(ctx, conn, req) {
    const { hubIo } = await import("../fleet/io/hub-io.ts");
    return hubIo(ctx.fleet, conn, req);
  },
  async fanout(ctx, conn, req) {
    const { hubFanout } = await import("../fleet/io/fanout.ts");
    return hubFanout(ctx.fleet, conn, req);
  },
  restart(ctx, conn) {
    conn.reply.text(okReply("restarting daemon"));
    ctx.restart();
    return "ok";
  },
  stop(ctx, conn, req) {
    conn.reply.text(okReply("stopping daemon"));
    ctx.stop(req.opts["keep-sessions"] === true);
    return "ok";
  },
  hello(ctx, conn) {
    conn.reply.text(json({ version: VERSION, protocol: PROTOCOL_VERSION, pid: process.pid, socket: ctx.socket, listen: ctx.endpoints }));
    return "ok";
  },
  async connect(ctx, conn, req) {
    const [name, hostPort, token] = req.args as [string, string, string];
    const p = await ctx.proxies.connect(ctx.registry, name, hostPort, token, req.opts.tls === true);
    conn.reply.text(okReply(`connected ${name} -> ${p.label}`));
    return "ok" as const;
  },
  disconnect(ctx, conn, req) {
    ctx.proxies.disconnect(ctx.registry, req.args[0]!);
    conn.reply.text(okReply(`disconnected ${req.args[0]}`));
    return "ok";
  },
};

/** One frame, parsed once: the request, or why it is not one. */
export interface ParsedFrame extends Prepared {
  text: string;
  cmd: string;
  /** The session as written, for the access log ("" if none). */
  session: string;
  bodyBytes: number;
  req?: Request;
  error?: PythondError;
}

/** Commands that also take `<proxy> <remote-session>` (the original pythond's form). */
const TWO_NAME = new Set<CommandName>(["run", "fire", "fork"]);

export function parse(ctx: DaemonContext, text: string): ParsedFrame | null {
  const frame = parseFrame(text);
  if (frame === null) return null;
  let session = "";
  if (frame.cmd !== "ls" && frame.args[0] && !frame.args[0].startsWith("--")) session = frame.args[0];
  const p: ParsedFrame = { text, cmd: frame.cmd, session, bodyBytes: Buffer.byteLength(frame.body) };
  try {
    p.req = twoNames(ctx, toRequest(frame));
    p.cmd = p.req.cmd;
    p.session = p.req.args[0] && specOf(p.req.cmd).target === "session" ? p.req.args[0] : session;
    // A plain `run <name>` of a local session may start while earlier ones for it still run.
    if (p.req.cmd === "run" && p.req.args.length === 1 && isEmpty(p.req.opts) && ctx.registry.has(p.session) && !viaSource(ctx, p.session)) {
      p.overlap = p.session;
    }
  } catch (e) {
    p.error = PythondError.from(e);
  }
  return p;
}

/** `run <proxy> <session>` is `run <proxy>/<session>`; two names for a local session are a usage error. */
function twoNames(ctx: DaemonContext, req: Request): Request {
  if (req.args.length < 2 || !TWO_NAME.has(req.cmd)) return req;
  const [via, session] = req.args as [string, string];
  if (via.includes("/") || !viaSource(ctx, via)) {
    throw new PythondError("usage", `usage: ${specOf(req.cmd).synopsis}`);
  }
  return { ...req, args: [`${via}/${session}`] };
}

function isEmpty(o: object): boolean {
  for (const _ in o) return false;
  return true;
}

function viaSource(ctx: DaemonContext, name: string): boolean {
  return ctx.sources.some((s) => s.target(name, name, name) !== undefined);
}

/** The target a session name stands for: `a/b` through proxy (or node) a; a bare name: a proxy's, else local. */
export function resolveTarget(ctx: DaemonContext, name: string): Target {
  const { via, session } = splitTargetName(name);
  if (via !== undefined) {
    checkName(session);
    for (const s of ctx.sources) {
      const t = s.target(via, session, name);
      if (t) return t;
    }
    // `a/b` without a proxy or node `a`: on a hub, `ERR no node 'a' -- nodes: …`
    if (ctx.fleet) ctx.fleet.registry.get(via);
    checkName(name); // elsewhere just an invalid name
  }
  checkName(name);
  for (const s of ctx.sources) {
    const t = s.target(name, name, name);
    if (t) return t;
  }
  return new LocalTarget(ctx.registry, ctx.log, name, ctx.idleTimeout);
}

/** The caller check of every path. */
export function checkCaller(cmd: CommandName, caller: ClientConn["caller"]): void {
  const callers = specOf(cmd).callers ?? CLIENT_CALLERS;
  if (callers.includes(caller)) return;
  if (callers.length === 1 && callers[0] === "local") throw new PythondError("not_local", `${cmd} is only accepted on the local socket`);
  throw new PythondError("not_local", `${cmd} is not accepted from a ${caller} caller`);
}

/** Handles one parsed frame: caller, target, handler, reply, log. */
export async function handle(ctx: DaemonContext, conn: ClientConn, p: ParsedFrame): Promise<void> {
  let status: Status = "error";
  let cmd = p.cmd;
  let where: { node?: string } = {};
  try {
    if (p.error) throw p.error;
    const req = p.req!;
    checkCaller(req.cmd, conn.caller);
    where = nodeField(ctx, req);
    ctx.log.write("command", { conn_id: conn.id, peer: conn.peer, cmd, session: loggable(p.session), body_bytes: p.bodyBytes, ...where });
    const target = specOf(req.cmd).target === "session" ? resolveTarget(ctx, req.args[0]!) : (undefined as unknown as Target);
    status = await HANDLERS[req.cmd](ctx, conn, req, target);
  } catch (e) {
    const err = PythondError.from(e);
    if (conn.open) conn.reply.text(err.toFrame(conn.codes));
    if (err.code === "unknown_command" || err.code === "usage") cmd = cmd.slice(0, 32);
  }
  ctx.log.write("result", { conn_id: conn.id, peer: conn.peer, cmd, session: loggable(p.session), status, body_bytes: p.bodyBytes, ...where });
}

/** The node a command goes to (`node/session`, `ls node`), named in its access-log lines. */
function nodeField(ctx: DaemonContext, req: Request): { node?: string } {
  if (!ctx.fleet) return {};
  const name = req.cmd === "ls" || req.cmd === "io" ? req.args[0] : specOf(req.cmd).target === "session" ? splitTargetName(req.args[0] ?? "").via : undefined;
  return name !== undefined && ctx.fleet.registry.has(name) ? { node: name } : {};
}

/** The router of a daemon, as connections use it (conn.ts). */
export function router(ctx: DaemonContext): Router<ParsedFrame> {
  return { prepare: (_conn, text) => parse(ctx, text), handle: (conn, p) => handle(ctx, conn, p) };
}

function loggable(name: string): string {
  if (!name) return "";
  try {
    const { via, session } = splitTargetName(name);
    if (via !== undefined) return `${checkName(via)}/${checkName(session)}`;
    return checkName(name);
  } catch {
    return "invalid";
  }
}
