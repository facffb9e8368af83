/**
 * The client's side of `pysh sh` and `pysh job`, over a tunnel already opened with its IoSpec.
 * Output is handed to the sinks as it arrives and the tunnel credits it only once a sink has
 * taken it (an awaited write to stdout), so a slow terminal or pipe slows the command on the node.
 * Nothing here prints: the CLI chooses words and exit codes.
 */
import { PythondError } from "../../protocol/errors.ts";
import type { Duplex } from "../duplex.ts";
import type { JobInfo, JobResult } from "../exec/job.ts";

export interface OutputSinks {
  stdout(b: Uint8Array): Promise<void> | void;
  stderr(b: Uint8Array): Promise<void> | void;
  /** Kept output had already gone (bounded) before the offset asked for. */
  skipped?(fd: 1 | 2, n: number): void;
}

export interface ShSinks extends OutputSinks {
  /** Forwarded as the command's stdin, then EOF (the spec must say stdin: true). */
  stdin?: AsyncIterable<Uint8Array>;
  started?(id: string, pid: number, created: boolean): void;
}

/** The link went away mid-command: the command runs on; `id` and offsets say where to resume. */
export class CommandLost extends PythondError {
  constructor(
    readonly id: string | undefined,
    readonly offsets: { out: number; err: number },
    why: string,
  ) {
    super("transfer_failed", why);
  }
}

type Record_ = { t: string; [k: string]: unknown };

function parse(m: string): Record_ {
  const r = JSON.parse(m) as Record_;
  if (r.t === "err") throw new PythondError(r.code as "io", String(r.message));
  return r;
}

/** Reads output messages until a record other than output arrives; returns it (null: tunnel ended). */
async function readOutput(io: Duplex, sinks: OutputSinks, offsets: { out: number; err: number }): Promise<Record_ | null> {
  for (;;) {
    const m = await io.recv();
    if (m === null) return null;
    if (typeof m === "string") {
      const r = parse(m);
      if (r.t === "skipped") {
        const fd = r.fd === 2 ? 2 : 1;
        if (fd === 1) offsets.out += Number(r.n);
        else offsets.err += Number(r.n);
        sinks.skipped?.(fd, Number(r.n));
        continue;
      }
      return r;
    }
    const data = m.subarray(1);
    if (m[0] === 2) {
      offsets.err += data.length;
      await sinks.stderr(data);
    } else {
      offsets.out += data.length;
      await sinks.stdout(data);
    }
  }
}

export interface ShOutcome {
  id: string;
  result: JobResult;
}

/** Runs `sh` (attached) to the end. Throws CommandLost if the tunnel breaks before the exit. */
export async function runSh(io: Duplex, sinks: ShSinks): Promise<ShOutcome> {
  const offsets = { out: 0, err: 0 };
  const first = await io.recv();
  if (first === null || typeof first !== "string") throw new CommandLost(undefined, offsets, "the connection closed before the command started");
  const started = parse(first);
  const id = String(started.id);
  sinks.started?.(id, Number(started.pid), started.created !== false);
  if (sinks.stdin) {
    void (async () => {
      try {
        for await (const chunk of sinks.stdin!) await io.send(chunk);
        await io.send(JSON.stringify({ t: "eof" }));
      } catch {
        // the tunnel ended first (the command exited without reading all of it): dropped, as a pipe
      }
    })();
  }
  const end = await readOutput(io, sinks, offsets);
  io.close();
  if (end?.t !== "exit") throw new CommandLost(id, offsets, "lost the connection to the node before the command ended");
  const { t: _t, id: _id, ...result } = end;
  return { id, result: result as unknown as JobResult };
}

/** `sh --detach`: the job id, once the node has started it. */
export async function startDetached(io: Duplex): Promise<{ id: string; pid: number }> {
  const first = await io.recv();
  io.close();
  if (first === null || typeof first !== "string") throw new PythondError("transfer_failed", "the connection closed before the command started");
  const r = parse(first);
  return { id: String(r.id), pid: Number(r.pid) };
}

export type JobAnswer = { t: "jobs"; jobs: JobInfo[] } | { t: "info"; job: JobInfo } | { t: "exit"; id: string; result: JobResult };

/** `job` (list, info, wait, kill): output to the sinks, then the final record. */
export async function jobRequest(io: Duplex, sinks: OutputSinks, from = { out: 0, err: 0 }): Promise<JobAnswer> {
  const offsets = { ...from };
  const end = await readOutput(io, sinks, offsets);
  io.close();
  if (!end) throw new CommandLost(undefined, offsets, "lost the connection to the node before the answer");
  if (end.t === "exit") {
    const { t: _t, id, ...result } = end;
    return { t: "exit", id: String(id), result: result as unknown as JobResult };
  }
  return end as unknown as JobAnswer;
}
