/**
 * The node's side of `pysh sh` and `pysh job` (see src/protocol/fleet-io.ts for the messages).
 * Output goes out as the job's reader yields it, one tunnel credit at a time: a slow client holds
 * the reader back, which holds the command's pipe (src/fleet/exec/job.ts). When the client goes
 * away the reader lets go and the command runs on, its output kept for `pysh job`.
 */
import { PythondError } from "../../protocol/errors.ts";
import type { IoSpec } from "../../protocol/fleet-io.ts";
import type { Duplex } from "../duplex.ts";
import type { Job } from "../exec/job.ts";
import type { JobTable } from "../exec/table.ts";
import { TunnelDuplex } from "./tunnel.ts";

/** Biggest data message: keeps a frame small next to everything else on the link. */
const PIECE = 256 << 10;

export function json(m: object): string {
  return JSON.stringify(m);
}

/** An error as the tunnel's last message (best effort: the client may be gone). */
export async function sendError(io: Duplex, e: unknown): Promise<void> {
  const err = PythondError.from(e);
  await io.send(json({ t: "err", code: err.code, message: err.message })).catch(() => {});
  io.close();
}

async function sendOutput(io: Duplex, fd: 1 | 2, data: Uint8Array): Promise<void> {
  for (let at = 0; at < data.length; at += PIECE) {
    const piece = data.subarray(at, at + PIECE);
    if (io instanceof TunnelDuplex) await io.sendTagged(fd, piece);
    else {
      const m = new Uint8Array(1 + piece.length);
      m[0] = fd;
      m.set(piece, 1);
      await io.send(m);
    }
  }
}

/**
 * Streams a job's output from `from` to the client until it ends (then `exit`) or the client goes.
 * With `input`, what the client sends is the command's stdin.
 */
export async function streamJob(job: Job, io: Duplex, from: { out: number; err: number }, input: boolean): Promise<void> {
  const reader = job.output(from);
  void (async () => {
    for (;;) {
      const m = await io.recv();
      if (m === null) break;
      if (typeof m === "string") {
        const c = JSON.parse(m) as { t: string };
        if (c.t === "eof" && input) job.closeStdin();
        else if (c.t === "kill") job.kill();
      } else if (input) await job.writeStdin(m);
    }
    // the client went away (or closed after the end): the job runs on without this reader; its
    // stdin cannot come back, so the command sees EOF
    reader.close();
    if (input) job.closeStdin();
  })();
  try {
    for await (const e of reader) {
      if (e.skipped) await io.send(json({ t: "skipped", fd: e.fd, n: e.skipped }));
      await sendOutput(io, e.fd, e.data);
    }
    if (job.result) await io.send(json({ t: "exit", id: job.id, ...job.result }));
  } catch {
    reader.close(); // the tunnel broke mid-send
  }
  io.close();
}

export async function serveSh(jobs: JobTable, spec: Extract<IoSpec, { kind: "sh" }>, io: Duplex): Promise<void> {
  let job: Job;
  let created: boolean;
  try {
    ({ job, created } = jobs.start(
      { command: spec.command, cwd: spec.cwd, env: spec.env, timeoutMs: spec.timeoutMs, stdin: !!spec.stdin },
      spec.id,
    ));
  } catch (e) {
    return sendError(io, e);
  }
  try {
    await io.send(json({ t: "started", id: job.id, pid: job.pid, created }));
  } catch {
    return; // the client is gone already; the job runs on
  }
  if (spec.detach) return io.close();
  // a resent request (created false) re-attaches from the start without taking stdin twice
  await streamJob(job, io, { out: 0, err: 0 }, created && !!spec.stdin);
}

export async function serveJob(jobs: JobTable, spec: Extract<IoSpec, { kind: "job" }>, io: Duplex): Promise<void> {
  try {
    if (spec.action === "list") {
      await io.send(json({ t: "jobs", jobs: jobs.list() }));
      return io.close();
    }
    if (!spec.id) throw new PythondError("usage", "job needs an id");
    const job = jobs.get(spec.id);
    const from = spec.from ?? { out: 0, err: 0 };
    if (spec.action === "info") {
      for (const [fd, ring, at] of [
        [1, job.out, from.out],
        [2, job.err, from.err],
      ] as const) {
        const { offset, data } = ring.read(at);
        if (offset > at) await io.send(json({ t: "skipped", fd, n: offset - at }));
        await sendOutput(io, fd, data);
      }
      await io.send(json({ t: "info", job: job.info() }));
      return io.close();
    }
    if (spec.action === "kill") {
      job.kill();
      return streamJob(job, io, { out: job.out.end, err: job.err.end }, false);
    }
    return streamJob(job, io, from, false);
  } catch (e) {
    return sendError(io, e);
  }
}
