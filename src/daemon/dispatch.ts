/**
 * The dispatch table: one handler per command of src/protocol/commands.ts. A handler replies
 * through the connection and returns whether the command succeeded (for the access log). Errors
 * are thrown as PythondError and turned into `ERR <message>` by `handleFrame`.
 */
import { COMMANDS, toRequest, type CommandName, type CommandSpec, type Request } from "../protocol/commands.ts";
import { PythondError, type ErrorCode } from "../protocol/errors.ts";
import { parseFrame } from "../protocol/frame.ts";
import { checkName } from "../protocol/names.ts";
import { PROTOCOL_VERSION, VERSION } from "../protocol/version.ts";
import type { AccessLog } from "./access-log.ts";
import type { ClientConn } from "./conn.ts";
import { attachSession, detachSession, resizeSession } from "../sessions/attach.ts";
import { PROXIED, type Proxies } from "../proxy/proxy.ts";
import { runCell } from "../sessions/run.ts";
import type { Registry } from "../sessions/registry.ts";
import type { FleetHub } from "../fleet/hub/hub.ts";
import { splitTargetName, type Target } from "./target.ts";

export interface DaemonContext {
  registry: Registry;
  log: AccessLog;
  socket: string;
  /** Remote proxies (`connect`): names that stand for sessions of other daemons. */
  proxies: Proxies;
  /** TCP/TLS endpoints this daemon listens on (`tls://host:port`), for `hello`. */
  endpoints: string[];
  stop(keepSessions: boolean): void;
  /** Ends this daemon (sessions live on) and starts the binary again in its place. */
  restart(): void;
  /** Daemon-wide default for sessions' --idle-timeout (seconds), if any. */
  idleTimeout?: number;
  /** The fleet hub (every daemon with a listener is one): nodes are names `node/session`. */
  fleet?: FleetHub;
}

type Status = "ok" | "error";
type Handler = (ctx: DaemonContext, conn: ClientConn, req: Request) => Promise<Status> | Status;

const json = (v: unknown) => JSON.stringify(v);

/**
 * Sends a worker reply: JSON data as text, strings as they are. A failed reply with JSON data
 * (poll of an unknown cell) is sent as that JSON to the original's clients, and as `ERR <json>`
 * to ours, so that every error reply of pythond.1 starts with `ERR `.
 */
function sendWorkerReply(conn: ClientConn, h: Record<string, unknown>): Status {
  const data = h.data;
  if (!h.ok && data === undefined) {
    throw new PythondError((h.code as ErrorCode) ?? "internal", String(h.error ?? "worker error"));
  }
  const text = typeof data === "string" ? data : json(data ?? {});
  conn.reply.text(!h.ok && conn.streaming ? `ERR ${text}` : text);
  return h.ok ? "ok" : "error";
}

/** `wait`: streams like `run` for pythond.1 clients; the poll JSON for the original's. */
async function waitCell(ctx: DaemonContext, conn: ClientConn, req: Request): Promise<Status> {
  const s = ctx.registry.get(checkName(req.args[0]!));
  const timeout = parseSeconds(req.opts.timeout, "--timeout");
  const h = await s.link.request("wait", { cell: req.args[1], ...(timeout ? { timeout } : {}) });
  const d = (h.data ?? {}) as Record<string, unknown>;
  if (!conn.streaming || !h.ok) {
    const { out: _o, traceback: _t, ...poll } = d;
    return sendWorkerReply(conn, { ...h, data: poll });
  }
  if (d.timed_out) throw new PythondError("timeout", `cell ${req.args[1]} is still running after --timeout ${timeout}s`);
  conn.reply.text(`CELL ${String(d.cell_id)}`);
  if (d.out) conn.reply.binary(new TextEncoder().encode(String(d.out)));
  conn.reply.text(d.status === "done" ? "OK" : `ERR execution failed\n${String(d.traceback ?? "")}`);
  return d.status === "done" ? "ok" : "error";
}

async function workerCall(ctx: DaemonContext, conn: ClientConn, name: string, op: string, fields = {}, body?: string) {
  const s = ctx.registry.get(checkName(name));
  return sendWorkerReply(conn, await s.link.request(op, fields, body));
}

/** Path options arrive percent-encoded from pysh (frames split on spaces); plain paths pass. */
function pathOpt(v: string | true | undefined): string | undefined {
  if (typeof v !== "string") return undefined;
  try {
    return decodeURIComponent(v);
  } catch {
    return v;
  }
}

function parseSeconds(v: string | true | undefined, what: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new PythondError("usage", `${what} takes a number of seconds > 0 (got ${String(v)})`);
  return n;
}

export const HANDLERS: Record<CommandName, Handler> = {
  async new(ctx, conn, req) {
    const name = checkName(req.args[0]!);
    const python = pathOpt(req.opts.python);
    const cwd = pathOpt(req.opts.cwd);
    const idle = parseSeconds(req.opts["idle-timeout"], "--idle-timeout") ?? ctx.idleTimeout;
    const s = await ctx.registry.create(name, { replace: req.opts.replace === true, python, cwd, idleTimeout: idle });
    conn.reply.text(`OK ${name} pid=${s.pid}`);
    return "ok";
  },
  async run(ctx, conn, req) {
    const name = checkName(req.args[0]!);
    return runCell(ctx.registry, conn, name, req.body, parseSeconds(req.opts.timeout, "--timeout"));
  },
  fire: (ctx, conn, req) => workerCall(ctx, conn, req.args[0]!, "fire", {}, req.body),
  fork: (ctx, conn, req) => workerCall(ctx, conn, req.args[0]!, "fork", {}, req.body),
  poll: (ctx, conn, req) => workerCall(ctx, conn, req.args[0]!, "poll", req.args[1] ? { cell: req.args[1] } : {}),
  wait: waitCell,
  int: (ctx, conn, req) => workerCall(ctx, conn, req.args[0]!, "int"),
  async status(ctx, conn, req) {
    // `queued`: runs the daemon has handed to the worker that wait behind the running cell (the
    // worker reads them only when it gets to them).
    const s = ctx.registry.get(checkName(req.args[0]!));
    const h = await s.link.request("status");
    if (h.ok && h.data && typeof h.data === "object") (h.data as Record<string, unknown>).queued = s.link.queuedRuns;
    return sendWorkerReply(conn, h);
  },
  vars: (ctx, conn, req) => workerCall(ctx, conn, req.args[0]!, "vars"),
  complete(ctx, conn, req) {
    const text = req.args.length > 1 ? req.args.slice(1).join(" ") : req.body;
    return workerCall(ctx, conn, req.args[0]!, "complete", {}, text);
  },
  async kill(ctx, conn, req) {
    const name = checkName(req.args[0]!);
    await ctx.registry.kill(name);
    conn.reply.text(`OK killed ${name}`);
    return "ok";
  },
  ls(ctx, conn, req) {
    if (req.args[0] !== undefined) {
      // `ls worker-1`: that node's own listing.
      if (!ctx.fleet) throw new PythondError("no_node", `no node '${req.args[0]}' -- this daemon is not a hub (it has no --listen)`);
      return ctx.fleet.target(req.args[0], req.args[0], `${req.args[0]}/`).relay(conn, req, "ls");
    }
    const lines = ctx.registry.list().map((s) => {
      if (s.state === "alive") return `  ${s.name}: alive pid=${s.pid} (pty)`;
      if (s.state === "starting") return `  ${s.name}: starting`;
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
    conn.reply.text(`OK forgot node ${id}`);
    return "ok";
  },
  async io(ctx, conn, req) {
    const { hubIo } = await import("../fleet/io/hub-io.ts");
    return hubIo(ctx.fleet, conn, req);
  },
  async fanout(ctx, conn, req) {
    const { hubFanout } = await import("../fleet/io/fanout.ts");
    return hubFanout(ctx.fleet, conn, req);
  },
  attach: (ctx, conn, req) => attachSession(ctx, conn, req),
  detach: (ctx, conn) => detachSession(ctx, conn),
  resize: (ctx, conn, req) => resizeSession(ctx, conn, req),
  restart(ctx, conn) {
    conn.reply.text("OK restarting daemon");
    ctx.restart();
    return "ok";
  },
  stop(ctx, conn, req) {
    conn.reply.text("OK stopping daemon");
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
    conn.reply.text(`OK connected ${name} -> ${p.label}`);
    return "ok" as const;
  },
  disconnect(ctx, conn, req) {
    ctx.proxies.disconnect(ctx.registry, req.args[0]!);
    conn.reply.text(`OK disconnected ${req.args[0]}`);
    return "ok";
  },
};

/**
 * The session of a plain `run <name>` frame for a local session: such frames may start while
 * earlier ones for the same session are still running (src/daemon/conn.ts). Anything else
 * (options, odd spacing, a remote proxy) takes the general, one-at-a-time path.
 */
export function runSession(ctx: DaemonContext, text: string): string | undefined {
  if (!text.startsWith("run ")) return undefined;
  const nl = text.indexOf("\n");
  const name = text.slice(4, nl < 0 ? undefined : nl);
  if (name.includes(" ") || !ctx.registry.has(name) || ctx.proxies.get(name) !== undefined) return undefined;
  return name;
}

/**
 * Handles one text frame from a client: parse, check, dispatch, reply, log. `runName`: the
 * frame is a plain `run <name>` for that local session (runSession), the one frame every cell
 * sends: it goes straight to runCell, with what parseFrame and toRequest would have made of it.
 */
export async function handleFrame(ctx: DaemonContext, conn: ClientConn, text: string, runName?: string): Promise<void> {
  if (runName !== undefined) return plainRun(ctx, conn, text, runName);
  const frame = parseFrame(text);
  if (frame === null) return;
  const bodyBytes = Buffer.byteLength(frame.body);
  let session = "";
  let status: Status = "error";
  let cmd = frame.cmd;
  if (frame.cmd !== "ls" && frame.args[0] && !frame.args[0].startsWith("--")) session = frame.args[0];
  // `node/session`: logged as that session with the node beside it.
  const split = splitTargetName(session);
  const where: Record<string, string> = split.via !== undefined ? { node: loggableNode(split.via) } : {};
  if (split.via !== undefined) session = split.session;
  if ((frame.cmd === "ls" || frame.cmd === "io") && frame.args[0]) where.node = loggableNode(frame.args[0]);
  if (frame.cmd === "io") session = "";
  try {
    const req = toRequest(frame);
    cmd = req.cmd;
    const spec = COMMANDS[req.cmd] as CommandSpec;
    if (spec.callers && !spec.callers.includes(conn.caller)) {
      throw new PythondError("not_local", `${req.cmd} is only accepted on the local socket`);
    }
    ctx.log.write("command", { conn_id: conn.id, peer: conn.peer, cmd, session: loggable(session), body_bytes: bodyBytes, ...where });
    if (spec.target === "session" && split.via !== undefined) status = await viaNode(ctx, conn, req, spec, split.via, split.session);
    else {
      const remote = PROXIED.has(req.cmd) && ctx.proxies.get(req.args[0]!) !== undefined;
      status = await (remote ? ctx.proxies.forward(conn, req, text) : HANDLERS[req.cmd](ctx, conn, req));
    }
  } catch (e) {
    const err = PythondError.from(e);
    if (conn.open) conn.reply.text(err.toFrame());
    if (err.code === "unknown_command" || err.code === "usage") cmd = cmd.slice(0, 32);
  }
  ctx.log.write("result", { conn_id: conn.id, peer: conn.peer, cmd, session: loggable(session), status, body_bytes: bodyBytes, ...where });
}

/** A session command for `node/session`: through the node's Target door the table names. */
function viaNode(ctx: DaemonContext, conn: ClientConn, req: Request, spec: CommandSpec, via: string, session: string): Promise<Status> {
  if (!ctx.fleet) throw new PythondError("no_node", `no node '${via}' -- this daemon is not a hub (start it with --listen HOST:PORT)`);
  const t: Target = ctx.fleet.target(via, session, req.args[0]!);
  return spec.via === "run" ? t.run(conn, req) : spec.via === "attach" ? t.attach(conn, req) : t.request(conn, req);
}

function loggableNode(id: string): string {
  return /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(id) ? id : "invalid";
}

async function plainRun(ctx: DaemonContext, conn: ClientConn, text: string, name: string): Promise<void> {
  if (text.endsWith("\r\n")) text = text.slice(0, -2); // as parseFrame
  const nl = text.indexOf("\n");
  const body = nl < 0 ? "" : text.slice(nl + 1);
  const fields = { conn_id: conn.id, peer: conn.peer, cmd: "run", session: name, body_bytes: Buffer.byteLength(body) };
  ctx.log.write("command", fields);
  let status: Status = "error";
  try {
    status = await runCell(ctx.registry, conn, name, body, undefined);
  } catch (e) {
    if (conn.open) conn.reply.text(PythondError.from(e).toFrame());
  }
  ctx.log.write("result", { ...fields, status });
}

function loggable(name: string): string {
  if (!name) return "";
  try {
    return checkName(name);
  } catch {
    return "invalid";
  }
}
