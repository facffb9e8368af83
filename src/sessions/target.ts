/**
 * A local session as a Target (src/daemon/target.ts): the answers of every session command for a
 * session of this daemon, through its worker link. Made per request by the router from the name
 * only (the session may not exist yet: `new`); the registry says what there is when it is used.
 *
 *   run      run (run.ts), wait (the poll JSON for pythond.0.4; streamed like run for pythond.1)
 *   request  new, kill (the registry); fire, fork, poll, int, status, vars, complete (one worker
 *            request each; the worker's reply goes out as it is: JSON as text, strings as they are)
 *   attach   attach, resize (attach.ts)
 */
import { statSync } from "node:fs";
import type { Request } from "../protocol/commands.ts";
import { PythondError, isErrorCode } from "../protocol/errors.ts";
import { decodePathArg } from "../protocol/frame.ts";
import { cellReply, executionFailed, OK, okReply } from "../protocol/replies.ts";
import type { WorkerHeader, WorkerOp } from "../protocol/worker.ts";
import type { AccessLog } from "../daemon/access-log.ts";
import type { ClientConn } from "../daemon/conn.ts";
import type { Status, Target } from "../daemon/target.ts";
import { attachSession, resizeSession } from "./attach.ts";
import { boundedStatus } from "./health.ts";
import type { Registry } from "./registry.ts";
import { runCell } from "./run.ts";

const json = (v: unknown) => JSON.stringify(v);

export class LocalTarget implements Target {
  readonly kind = "local" as const;
  readonly session: string;

  constructor(
    private readonly registry: Registry,
    private readonly log: AccessLog,
    readonly name: string,
    /** Daemon-wide default --idle-timeout for `new`. */
    private readonly idleTimeout?: number,
  ) {
    this.session = name;
  }

  run(conn: ClientConn, req: Request): Promise<Status> {
    if (req.cmd === "wait") return this.wait(conn, req);
    return runCell(this.registry, conn, this.name, req.body, parseSeconds(req.opts.timeout, "--timeout"));
  }

  async request(conn: ClientConn, req: Request): Promise<Status> {
    const name = this.name;
    switch (req.cmd) {
      case "new": {
        const python = pathOpt(req.opts.python);
        const cwd = pathOpt(req.opts.cwd);
        if (cwd !== undefined && !isDirectory(cwd)) throw new PythondError("usage", `--cwd ${cwd}: no such directory`);
        const idle = parseSeconds(req.opts["idle-timeout"], "--idle-timeout") ?? this.idleTimeout;
        const s = await this.registry.create(name, { replace: req.opts.replace === true, python, cwd, idleTimeout: idle });
        conn.reply.text(okReply(`${name} pid=${s.pid}`));
        return "ok";
      }
      case "kill":
        await this.registry.kill(name);
        conn.reply.text(okReply(`killed ${name}`));
        return "ok";
      case "fire":
      case "fork":
        return this.call(conn, req.cmd, {}, req.body);
      case "poll":
        return this.call(conn, "poll", req.args[1] ? { cell: req.args[1] } : {});
      case "status": {
        // `queued`: runs the daemon has handed to the worker that wait behind the running cell (the
        // worker reads them only when it gets to them).
        const s = this.registry.get(name);
        const h = await boundedStatus(s); // a stopped or wedged worker: "unresponsive" within a bound
        if (h.ok && h.data && typeof h.data === "object") (h.data as Record<string, unknown>).queued = s.link.queuedRuns;
        return sendWorkerReply(conn, h);
      }
      case "complete": {
        const text = req.args.length > 1 ? req.args.slice(1).join(" ") : req.body;
        return this.call(conn, "complete", {}, text);
      }
      case "int":
        // `int <name> <cell_id>`: that cell only (pysh run's Ctrl-C must not stop the forks)
        return this.call(conn, "int", req.args[1] ? { cell: req.args[1] } : {});
      case "vars":
        return this.call(conn, req.cmd);
      default:
        throw new PythondError("internal", `${req.cmd} is not a request of a session`);
    }
  }

  attach(conn: ClientConn, req: Request): Promise<Status> {
    if (req.cmd === "resize") return Promise.resolve(resizeSession(this.registry, conn, this.name, req));
    return attachSession(this.registry, this.log, conn, this.name, req);
  }

  private async call(conn: ClientConn, op: WorkerOp, fields = {}, body?: string): Promise<Status> {
    const s = this.registry.get(this.name);
    return sendWorkerReply(conn, await s.link.request(op, fields, body));
  }

  /** `wait`: streams like `run` for pythond.1 clients; the poll JSON for the original's. */
  private async wait(conn: ClientConn, req: Request): Promise<Status> {
    const s = this.registry.get(this.name);
    const timeout = parseSeconds(req.opts.timeout, "--timeout");
    const h = await s.link.request("wait", { cell: req.args[1], ...(timeout ? { timeout } : {}) });
    const d = (h.data ?? {}) as Record<string, unknown>;
    if (!conn.streaming || !h.ok) {
      const { out: _o, traceback: _t, ...poll } = d;
      return sendWorkerReply(conn, { ...h, data: poll });
    }
    if (d.timed_out) throw new PythondError("timeout", `cell ${req.args[1]} is still running after --timeout ${timeout}s`);
    conn.reply.text(cellReply(String(d.cell_id)));
    if (d.out) conn.reply.binary(new TextEncoder().encode(String(d.out)));
    conn.reply.text(d.status === "done" ? OK : executionFailed(String(d.traceback ?? ""), conn.codes));
    return d.status === "done" ? "ok" : "error";
  }
}

/**
 * Sends a worker reply: JSON data as text, strings as they are. A failed reply with JSON data
 * (poll of an unknown cell) is sent as that JSON to the original's clients, and as `ERR <json>`
 * to ours, so that every error reply of pythond.1 starts with `ERR ` (with its code for
 * pythond.1+codes).
 */
function sendWorkerReply(conn: ClientConn, h: WorkerHeader): Status {
  const data = h.data;
  const code = typeof h.code === "string" && isErrorCode(h.code) ? h.code : "internal";
  if (!h.ok && data === undefined) throw new PythondError(code, String(h.error ?? "worker error"));
  const text = typeof data === "string" ? data : json(data ?? {});
  conn.reply.text(!h.ok && conn.streaming ? new PythondError(code, text).toFrame(conn.codes) : text);
  return h.ok ? "ok" : "error";
}

/** Path options arrive percent-encoded from pysh (frames split on spaces); plain paths pass. */
function pathOpt(v: string | true | undefined): string | undefined {
  return typeof v === "string" ? decodePathArg(v) : undefined;
}

export function parseSeconds(v: string | true | undefined, what: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new PythondError("usage", `${what} takes a number of seconds > 0 (got ${String(v)})`);
  return n;
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
