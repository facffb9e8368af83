/**
 * One shell command on a node (`pysh sh`): the words joined with spaces run by the user's shell
 * (`$SHELL -c`, else `/bin/sh -c`) in a process group of its own (setsid), stdout and stderr read
 * apart, bytes exact, and kept (the last `keep` bytes of each) by offset.
 *
 * Flow: readers (`output()`) pull what the pipes produced. While a reader is `window` bytes behind
 * on a stream, that pipe is not read, so the command blocks on its write: a slow client slows the
 * command instead of growing memory. With no reader (detached, or the link dropped) the pipes are
 * read on and the ring keeps the tail; a reader that comes back from an older offset is told how
 * many bytes it missed (`skipped`).
 *
 * End: the job is over when the shell has exited AND both pipes are closed (as ssh waits for the
 * channel's EOF: a grandchild holding stdout keeps it open). Only then is `result` set, so a
 * reader sees every byte before the terminal state. Timeout and kill signal the whole group:
 * SIGTERM, then SIGKILL `killGraceMs` later (timeout(1)'s 124 for a timeout).
 */
import { accessSync, constants as fsc, statSync } from "node:fs";
import { constants as osc } from "node:os";
import { PythondError } from "../../protocol/errors.ts";
import { OutputRing } from "./ring.ts";

export interface JobSpec {
  /** The command line (the client's words joined with spaces). */
  command: string;
  cwd?: string;
  /** Added to the node's environment. */
  env?: Record<string, string>;
  /** SIGTERM the group after this long, SIGKILL it `killGraceMs` later; the job exits 124. */
  timeoutMs?: number;
  /** Give the command a stdin pipe (`writeStdin`); otherwise it reads /dev/null. */
  stdin?: boolean;
  /** Bytes kept per stream for late readers (default 8 MiB, as a cell's output). */
  keep?: number;
  /** How far a reader may lag before the pipe stops being read (default 1 MiB). */
  window?: number;
  killGraceMs?: number;
  /** The shell to run `-c` with (default: $SHELL if executable, else /bin/sh). */
  shell?: string;
}

export interface JobResult {
  /** What `pysh sh` exits with: the code, 128+n for a signal, 124 for a timeout. */
  exit: number;
  code: number | null;
  signal: string | null;
  timedOut: boolean;
  killed: boolean;
  durationMs: number;
}

export interface JobInfo {
  id: string;
  command: string;
  pid: number;
  state: "running" | "exited";
  startedAt: number;
  durationMs: number;
  stdoutBytes: number;
  stderrBytes: number;
  leaderExited: boolean;
  result?: JobResult;
}

export interface OutputEvent {
  fd: 1 | 2;
  offset: number;
  data: Uint8Array;
  /** Bytes of this stream between the reader's position and `offset` no longer kept. */
  skipped: number;
}

export const KEEP = 8 << 20;
export const WINDOW = 1 << 20;
export const KILL_GRACE_MS = 3000;
/** Most bytes a reader takes in one piece when several pipe reads are waiting. */
const BATCH = 256 << 10;

export function defaultShell(): string {
  const sh = process.env.SHELL;
  if (sh && sh.startsWith("/")) {
    try {
      accessSync(sh, fsc.X_OK);
      return sh;
    } catch {
      // an unusable $SHELL (a removed package, a typo): fall back like sshd does to /bin/sh
    }
  }
  return "/bin/sh";
}

export class Job {
  readonly out: OutputRing;
  readonly err: OutputRing;
  readonly startedAt = Date.now();
  readonly pid: number;
  result?: JobResult;
  /** The shell itself has exited (its output may still be open: a grandchild holding it). */
  leaderExited = false;
  readonly done: Promise<JobResult>;
  private readonly proc: Bun.Subprocess<"ignore", "pipe", "pipe">;
  private readonly window: number;
  private readonly grace: number;
  private seq = 0;
  readonly readers = new Set<OutputReader>();
  private waiters: (() => void)[] = [];
  private ending?: "timeout" | "kill";
  private timers: ReturnType<typeof setTimeout>[] = [];
  private stdinQueue: { bytes: Uint8Array; resolve(): void }[] = [];
  private stdinPull?: () => void;
  private stdinEnded = false;
  private stdinDone = false;

  constructor(
    readonly id: string,
    readonly spec: JobSpec,
  ) {
    this.out = new OutputRing(spec.keep ?? KEEP);
    this.err = new OutputRing(spec.keep ?? KEEP);
    this.window = Math.min(spec.window ?? WINDOW, spec.keep ?? KEEP);
    this.grace = spec.killGraceMs ?? KILL_GRACE_MS;
    if (spec.cwd !== undefined) {
      let isDir = false;
      try {
        isDir = statSync(spec.cwd).isDirectory();
      } catch {
        throw new PythondError("not_found", `no such directory: ${spec.cwd}`);
      }
      if (!isDir) throw new PythondError("not_directory", `not a directory: ${spec.cwd}`);
    }
    const shell = spec.shell ?? defaultShell();
    try {
      this.proc = Bun.spawn([shell, "-c", spec.command], {
        cwd: spec.cwd,
        env: spec.env ? { ...process.env, ...spec.env } : process.env,
        stdin: spec.stdin ? this.stdinStream() : "ignore",
        stdout: "pipe",
        stderr: "pipe",
        detached: true, // setsid: its own group, so a kill reaches grandchildren too
      }) as unknown as Bun.Subprocess<"ignore", "pipe", "pipe">;
    } catch (e) {
      throw new PythondError("no_shell", `cannot start ${shell}: ${(e as Error).message}`);
    }
    this.pid = this.proc.pid;
    if (spec.timeoutMs !== undefined) this.timers.push(setTimeout(() => this.terminate("timeout"), spec.timeoutMs));
    void this.proc.exited.then(() => {
      this.leaderExited = true;
      this.wake();
    });
    this.done = this.finish();
  }

  private async finish(): Promise<JobResult> {
    await Promise.all([this.pump(this.proc.stdout, this.out, 1), this.pump(this.proc.stderr, this.err, 2), this.proc.exited]);
    this.dropStdin();
    for (const t of this.timers) clearTimeout(t);
    const signal = (this.proc.signalCode as string | null) ?? null;
    const code = signal ? null : this.proc.exitCode;
    const n = signal ? ((osc.signals as Record<string, number>)[signal] ?? 0) : 0;
    const timedOut = this.ending === "timeout";
    const result: JobResult = {
      exit: timedOut ? 124 : signal ? 128 + n : (code ?? 255),
      code,
      signal,
      timedOut,
      killed: this.ending === "kill",
      durationMs: Date.now() - this.startedAt,
    };
    this.result = result;
    this.wake();
    return result;
  }

  private async pump(stream: ReadableStream<Uint8Array>, ring: OutputRing, fd: 1 | 2): Promise<void> {
    const reader = stream.getReader();
    try {
      for (;;) {
        while (this.lagging(ring, fd)) await this.changed();
        const { value, done } = await reader.read();
        if (done) return;
        ring.push(this.seq++, value);
        this.wake();
      }
    } catch {
      // the pipe broke (the process is gone): what arrived is kept
    }
  }

  private lagging(ring: OutputRing, fd: 1 | 2): boolean {
    for (const r of this.readers) if (ring.end - r.pos[fd - 1]! >= this.window) return true;
    return false;
  }

  /** Resolves at the next change (output, a reader moving, the end). */
  changed(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  wake(): void {
    const w = this.waiters;
    if (w.length === 0) return;
    this.waiters = [];
    for (const f of w) f();
  }

  /** A reader of both streams from the given offsets (default: the start), in arrival order. */
  output(from: { out?: number; err?: number } = {}): OutputReader {
    const r = new OutputReader(this, [from.out ?? 0, from.err ?? 0]);
    this.readers.add(r);
    return r;
  }

  /**
   * Writes to the command's stdin; resolves when the child's pipe has taken it (backpressure).
   * Stdin is a stream Bun pulls from (not a FileSink: its write to a pipe the command closed
   * fails later, outside any await, as an unhandled EPIPE); once the command closed its stdin or
   * ended, what is written is dropped, as a pipe to a finished reader.
   */
  writeStdin(bytes: Uint8Array): Promise<void> {
    if (!this.spec.stdin) return Promise.reject(new PythondError("usage", `job ${this.id} has no stdin`));
    if (this.stdinDone) return Promise.resolve();
    return new Promise((resolve) => {
      this.stdinQueue.push({ bytes, resolve });
      this.stdinPull?.();
    });
  }

  closeStdin(): void {
    this.stdinEnded = true;
    this.stdinPull?.();
  }

  private stdinStream(): ReadableStream<Uint8Array> {
    return new ReadableStream<Uint8Array>(
      {
        pull: async (controller) => {
          while (this.stdinQueue.length === 0 && !this.stdinEnded && !this.stdinDone) {
            await new Promise<void>((r) => (this.stdinPull = r));
          }
          this.stdinPull = undefined;
          const item = this.stdinQueue.shift();
          if (item) {
            controller.enqueue(item.bytes);
            item.resolve();
          } else controller.close();
        },
        cancel: () => this.dropStdin(),
      },
      { highWaterMark: 0 },
    );
  }

  private dropStdin(): void {
    this.stdinDone = true;
    for (const it of this.stdinQueue.splice(0)) it.resolve();
    this.stdinPull?.();
  }

  /** Ends the command: SIGTERM to its group, SIGKILL after the grace period. */
  kill(): void {
    this.terminate("kill");
  }

  private terminate(why: "timeout" | "kill"): void {
    if (this.result || this.ending) return;
    this.ending = why;
    this.signalGroup("SIGTERM");
    // Not cleared when the job ends: a grandchild ignoring SIGTERM may outlive the shell and its
    // pipes. The group id cannot be handed to a new process while any member lives.
    const t = setTimeout(() => this.signalGroup("SIGKILL"), this.grace);
    t.unref?.();
  }

  private signalGroup(sig: NodeJS.Signals): void {
    try {
      process.kill(-this.pid, sig);
    } catch {
      // the group is gone already
    }
  }

  info(): JobInfo {
    return {
      id: this.id,
      command: this.spec.command,
      pid: this.pid,
      state: this.result ? "exited" : "running",
      startedAt: this.startedAt,
      durationMs: this.result?.durationMs ?? Date.now() - this.startedAt,
      stdoutBytes: this.out.end,
      stderrBytes: this.err.end,
      leaderExited: this.leaderExited,
      result: this.result,
    };
  }
}

/** Pulls a job's output from given offsets; ends (done) after the last byte, once the job is over. */
export class OutputReader implements AsyncIterableIterator<OutputEvent> {
  constructor(
    private readonly job: Job,
    /** Next offset wanted on stdout, stderr. */
    readonly pos: [number, number],
  ) {}

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<OutputEvent>> {
    for (;;) {
      if (!this.job.readers.has(this)) return { done: true, value: undefined };
      const a = this.job.out.at(this.pos[0]);
      const b = this.job.err.at(this.pos[1]);
      const c = a && (!b || a.seq <= b.seq) ? a : b;
      if (c) {
        const fd: 1 | 2 = c === a ? 1 : 2;
        const skipped = c.offset - this.pos[fd - 1]!;
        // Take what is already there of the same stream in one piece (up to BATCH), as long as it
        // arrived before the other stream's next chunk: fewer, larger messages downstream.
        const ring = fd === 1 ? this.job.out : this.job.err;
        const other = fd === 1 ? b : a;
        let end = c.offset + c.data.length;
        const parts = [c.data];
        let size = c.data.length;
        while (size < BATCH) {
          const d = ring.at(end);
          if (!d || (other && d.seq > other.seq)) break;
          const take = d.data.subarray(0, BATCH - size);
          parts.push(take);
          size += take.length;
          end += take.length;
        }
        this.pos[fd - 1] = end;
        this.job.wake(); // a pump may be waiting for this reader to move
        const data = parts.length === 1 ? c.data : Buffer.concat(parts, size);
        return { done: false, value: { fd, offset: c.offset, data, skipped } };
      }
      if (this.job.result) {
        this.close();
        return { done: true, value: undefined };
      }
      await this.job.changed();
    }
  }

  async return(): Promise<IteratorResult<OutputEvent>> {
    this.close();
    return { done: true, value: undefined };
  }

  /** Stops reading (the client or its link went): the pipes are read on without this reader. */
  close(): void {
    if (this.job.readers.delete(this)) this.job.wake();
  }
}
