/**
 * The dispatch table: one handler per command of src/protocol/commands.ts. A handler replies
 * through the connection and returns whether the command succeeded (for the access log). Errors
 * are thrown as PythondError and turned into `ERR <message>` by `handleFrame`.
 */
import { statSync } from "node:fs";
import { COMMANDS, toRequest, type CommandName, type Request } from "../protocol/commands.ts";
import { PythondError, type ErrorCode } from "../protocol/errors.ts";
import { parseFrame } from "../protocol/frame.ts";
import { checkName } from "../protocol/names.ts";
import { PROTOCOL_VERSION, VERSION } from "../protocol/version.ts";
import type { AccessLog } from "./access-log.ts";
import type { ClientConn } from "./conn.ts";
import { attachSession, detachSession, resizeSession } from "./attach.ts";
import { PROXIED, type Proxies } from "./proxy.ts";
import { runCell } from "./run.ts";
import type { Registry } from "./sessions.ts";

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

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
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
    if (cwd !== undefined && !isDirectory(cwd)) throw new PythondError("usage", `--cwd ${cwd}: no such directory`);
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
  int: (ctx, conn, req) => workerCall(ctx, conn, req.args[0]!, "int", req.args[1] ? { cell: req.args[1] } : {}),
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
  ls(ctx, conn) {
    const lines = ctx.registry.list().map((s) => {
      if (s.state === "alive") return `  ${s.name}: alive pid=${s.pid} (pty)`;
      if (s.state === "starting") return `  ${s.name}: starting`;
      if (s.state === "incompatible") return `  ${s.name}: incompatible pid=${s.pid} (${s.reason})`;
      return `  ${s.name}: dead (${s.reason ?? "reason unknown"})`;
    });
    lines.push(...ctx.proxies.list().map((p) => p.lsLine()));
    conn.reply.text(lines.length ? lines.join("\n") : "(no sessions)");
    return "ok";
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
  try {
    const req = toRequest(frame);
    cmd = req.cmd;
    const spec = COMMANDS[req.cmd] as { callers?: readonly string[] };
    if (spec.callers && !spec.callers.includes(conn.caller)) {
      throw new PythondError("not_local", `${req.cmd} is only accepted on the local socket`);
    }
    ctx.log.write("command", { conn_id: conn.id, peer: conn.peer, cmd, session: loggable(session), body_bytes: bodyBytes });
    const remote = PROXIED.has(req.cmd) && ctx.proxies.get(req.args[0]!) !== undefined;
    status = await (remote ? ctx.proxies.forward(conn, req, text) : HANDLERS[req.cmd](ctx, conn, req));
  } catch (e) {
    const err = PythondError.from(e);
    if (conn.open) conn.reply.text(err.toFrame());
    if (err.code === "unknown_command" || err.code === "usage") cmd = cmd.slice(0, 32);
  }
  ctx.log.write("result", { conn_id: conn.id, peer: conn.peer, cmd, session: loggable(session), status, body_bytes: bodyBytes });
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
