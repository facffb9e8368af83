/**
 * pysh sh <node> [--timeout S] [--cwd DIR] [--env K=V]… [--detach] [--] <command…>
 * pysh job <node> [<id>] [--wait | --kill] [--json]
 *
 * `sh` exits as the command did (128+n for a signal, 124 on --timeout); its own failures (no such
 * node, the link lost mid-command) exit 255, as ssh's do, saying what became of the command.
 */
import { ReplyError } from "../../client/api.ts";
import { CommandLost, jobRequest, runSh, startDetached, type OutputSinks } from "../../fleet/io/client.ts";
import { openTunnel } from "../../fleet/io/client-tunnel.ts";
import type { JobInfo, JobResult } from "../../fleet/exec/job.ts";
import { PythondError } from "../../protocol/errors.ts";
import { errLine, line, stderr, stdout } from "../out.ts";
import { envPairs, parseArgs, seconds } from "./args.ts";

const SH_USAGE = "usage: pysh sh <node> [--timeout S] [--cwd DIR] [--env K=V]... [--detach] [--] <command...>\n       pysh sh --all | -l k=v[,k=v] [--max-concurrency N] [--fail-fast] [--json] [--] <command...>";
const JOB_USAGE = "usage: pysh job <node> [<id>] [--wait | --kill] [--json]";

/** Output straight to our stdout/stderr, blocking: a full pipe stops the credits, then the node. */
export const SINKS: OutputSinks = {
  stdout: (b) => stdout(b),
  stderr: (b) => stderr(b),
  skipped: (fd, n) => stderr(`pysh: ${n} bytes of ${fd === 1 ? "stdout" : "stderr"} were no longer kept on the node (only the last 8 MiB are)\n`),
};

function fail(e: unknown, code = 255): number {
  errLine(e instanceof ReplyError ? e.reply : PythondError.from(e).toFrame());
  return code;
}

export function describeResult(r: JobResult): string {
  if (r.timedOut) return `timed out (exit 124; SIGTERM then SIGKILL to its process group)`;
  if (r.signal) return `killed by ${r.signal} (exit ${r.exit})`;
  return `exited ${r.exit}`;
}

async function stdinChunks(): Promise<AsyncIterable<Uint8Array> | undefined> {
  if (process.stdin.isTTY) return undefined; // a terminal is not forwarded (ssh -T would)
  return Bun.stdin.stream() as unknown as AsyncIterable<Uint8Array>;
}

export async function shMain(argv: string[]): Promise<number> {
  let a;
  try {
    a = parseArgs(argv, {
      valued: ["timeout", "cwd", "max-concurrency", "selector"],
      repeated: ["env"],
      switches: ["detach", "all", "fail-fast", "json"],
      short: { l: "selector" },
      positionals: (o) => (o.all || o.selector ? 0 : 1),
      usage: SH_USAGE,
    });
    if (a.rest.length === 0) throw new PythondError("usage", SH_USAGE);
  } catch (e) {
    return fail(e);
  }
  const command = a.rest.join(" ");
  let spec;
  try {
    spec = {
      kind: "sh" as const,
      command,
      cwd: typeof a.opts.cwd === "string" ? a.opts.cwd : undefined,
      env: envPairs(a.multi.env),
      timeoutMs: seconds(a.opts.timeout, "--timeout"),
    };
  } catch (e) {
    return fail(e);
  }
  if (a.opts.all || a.opts.selector) {
    const { fanoutMain } = await import("./fanout.ts");
    return fanoutMain(spec, a.opts);
  }
  const node = a.positional[0]!;
  if (a.opts.detach) {
    try {
      const { id } = await startDetached(await openTunnel(node, { ...spec, detach: true }));
      line(id);
      return 0;
    } catch (e) {
      return fail(e);
    }
  }
  const stdin = await stdinChunks();
  try {
    const { result } = await runSh(await openTunnel(node, { ...spec, stdin: stdin !== undefined }), { ...SINKS, stdin });
    if (result.timedOut) stderr(`pysh: timed out after ${a.opts.timeout}s on '${node}': SIGTERM to the command's process group, SIGKILL 3 s later (exit 124)\n`);
    return result.exit;
  } catch (e) {
    if (e instanceof CommandLost && e.id) {
      const msg =
        `lost the link to node '${node}' during the command: it is still running there (job ${e.id}); ` +
        `its output so far and the rest: pysh job ${node} ${e.id} --wait`;
      errLine(new PythondError("node_offline", msg).toFrame());
      return 255;
    }
    return fail(e);
  }
}

function jobLine(j: JobInfo): string {
  const d = (j.durationMs / 1000).toFixed(1);
  const state = j.result ? describeResult(j.result) : `running (pid ${j.pid})`;
  return `${j.id}\t${state}\t${d}s\t${j.command}`;
}

export async function jobMain(argv: string[]): Promise<number> {
  let a;
  try {
    a = parseArgs(argv, { switches: ["wait", "kill", "json"], positionals: 2, usage: JOB_USAGE });
    if (a.positional.length < 1 || a.rest.length) throw new PythondError("usage", JOB_USAGE);
    if (a.opts.wait && a.opts.kill) throw new PythondError("usage", `${JOB_USAGE}\n(--wait or --kill, not both)`);
  } catch (e) {
    return fail(e, 1);
  }
  const [node, id] = a.positional as [string, string | undefined];
  try {
    if (!id) {
      const r = await jobRequest(await openTunnel(node, { kind: "job", action: "list" }), SINKS);
      const jobs = r.t === "jobs" ? r.jobs : [];
      if (a.opts.json) line(JSON.stringify(jobs));
      else line(jobs.length ? jobs.map(jobLine).join("\n") : "(no jobs)");
      return 0;
    }
    const action = a.opts.wait ? "wait" : a.opts.kill ? "kill" : "info";
    const r = await jobRequest(await openTunnel(node, { kind: "job", action, id }), a.opts.json ? { stdout: () => {}, stderr: () => {} } : SINKS);
    if (r.t === "info") {
      if (a.opts.json) line(JSON.stringify(r.job));
      else stderr(`pysh: job ${r.job.id} on '${node}': ${r.job.result ? describeResult(r.job.result) : `running (pid ${r.job.pid})`} after ${(r.job.durationMs / 1000).toFixed(1)}s: ${r.job.command}\n`);
      return r.job.result?.exit ?? 0;
    }
    if (r.t === "exit") {
      if (a.opts.json) line(JSON.stringify({ id: r.id, ...r.result }));
      if (a.opts.kill) stderr(`pysh: job ${r.id} on '${node}' ended: ${describeResult(r.result)}\n`);
      return a.opts.kill ? 0 : r.result.exit;
    }
    return 0;
  } catch (e) {
    return fail(e, 1);
  }
}
