/**
 * What the library's fleet calls return (src/client/fleet.ts): a node as `pysh nodes --json`
 * describes it, a shell command's end with its output as bytes (and text helpers), a job's state.
 * Field names are the TypeScript spelling of the Python library's (`exit_code` → `exitCode`).
 */
import { PythondError } from "../protocol/errors.ts";
import type { JobInfo, JobResult } from "../fleet/exec/job.ts";

export type { JobInfo } from "../fleet/exec/job.ts";

export interface NodeInfo {
  id: string;
  state: "online" | "offline";
  /** When the state began (ISO 8601). */
  since: string;
  address: string;
  hostname: string;
  os: string;
  arch: string;
  version: string;
  labels: Record<string, string>;
  /** Sessions on the node (null until it said). */
  sessions: number | null;
  lastHeartbeat: string | null;
  rttMs: number | null;
}

/** `nodes --json` row (snake_case on the wire) → NodeInfo. */
export function nodeInfo(r: Record<string, unknown>): NodeInfo {
  return {
    id: String(r.id),
    state: r.state === "online" ? "online" : "offline",
    since: String(r.since ?? ""),
    address: String(r.address ?? ""),
    hostname: String(r.hostname ?? ""),
    os: String(r.os ?? ""),
    arch: String(r.arch ?? ""),
    version: String(r.version ?? ""),
    labels: (r.labels as Record<string, string>) ?? {},
    sessions: typeof r.sessions === "number" ? r.sessions : null,
    lastHeartbeat: typeof r.last_heartbeat === "string" ? r.last_heartbeat : null,
    rttMs: typeof r.rtt_ms === "number" ? r.rtt_ms : null,
  };
}

/** How a command ended (without its output: a streamed command's output went to its reader). */
export interface ShExit {
  node: string;
  /** The job id on the node (`job(node, id)`); null in a fan-out, whose jobs are the hub's. */
  id: string | null;
  /** What `pysh sh` exits with: the command's code, 128+n for a signal, 124 for a timeout. */
  exitCode: number;
  /** The exit code proper (null when a signal ended it). */
  code: number | null;
  signal: string | null;
  timedOut: boolean;
  /** Ended by `job(…, { kill: true })` or a fan-out's fail-fast. */
  killed: boolean;
  durationMs: number;
  /** Bytes the command wrote to each stream (more than kept when maxOutputBytes cut them). */
  stdoutBytes: number;
  stderrBytes: number;
}

export function exitOf(node: string, id: string | null, r: JobResult, out: number, err: number): ShExit {
  return { node, id, exitCode: r.exit, code: r.code, signal: r.signal, timedOut: r.timedOut, killed: r.killed, durationMs: r.durationMs, stdoutBytes: out, stderrBytes: err };
}

const dec = (b: Uint8Array) => new TextDecoder().decode(b);

/** A shell command's end and its output, bytes exact (`stdoutText` decodes UTF-8). */
export class ShResult implements ShExit {
  readonly node: string;
  readonly id: string | null;
  readonly exitCode: number;
  readonly code: number | null;
  readonly signal: string | null;
  readonly timedOut: boolean;
  readonly killed: boolean;
  readonly durationMs: number;
  readonly stdoutBytes: number;
  readonly stderrBytes: number;

  constructor(
    exit: ShExit,
    readonly stdout: Uint8Array,
    readonly stderr: Uint8Array,
  ) {
    this.node = exit.node;
    this.id = exit.id;
    this.exitCode = exit.exitCode;
    this.code = exit.code;
    this.signal = exit.signal;
    this.timedOut = exit.timedOut;
    this.killed = exit.killed;
    this.durationMs = exit.durationMs;
    this.stdoutBytes = exit.stdoutBytes;
    this.stderrBytes = exit.stderrBytes;
  }

  get stdoutText(): string {
    return dec(this.stdout);
  }

  get stderrText(): string {
    return dec(this.stderr);
  }

  /** Exited 0. */
  get ok(): boolean {
    return this.exitCode === 0;
  }

  /** Throws an execution_failed PythondError (with how it ended and its stderr) unless it exited 0. */
  check(): this {
    if (this.ok) return this;
    const how = this.timedOut ? "timed out" : this.signal ? `killed by ${this.signal}` : `exited ${this.exitCode}`;
    const err = this.stderrText.trimEnd();
    throw new PythondError("execution_failed", `command on '${this.node}' ${how}${err ? `\n${err.length > 4000 ? `…${err.slice(-4000)}` : err}` : ""}`);
  }
}

/** A job as the node keeps it: its state and the output it kept (the last 8 MiB of each stream). */
export interface JobState extends Pick<JobInfo, "id" | "command" | "pid" | "state" | "startedAt" | "durationMs"> {
  node: string;
  /** Its end, once it exited. */
  exit: ShExit | null;
  stdout: Uint8Array;
  stderr: Uint8Array;
  stdoutBytes: number;
  stderrBytes: number;
}

export function jobState(node: string, j: JobInfo, stdout: Uint8Array, stderr: Uint8Array): JobState {
  return {
    node,
    id: j.id,
    command: j.command,
    pid: j.pid,
    state: j.state,
    startedAt: j.startedAt,
    durationMs: j.durationMs,
    exit: j.result ? exitOf(node, j.id, j.result, j.stdoutBytes, j.stderrBytes) : null,
    stdout,
    stderr,
    stdoutBytes: j.stdoutBytes,
    stderrBytes: j.stderrBytes,
  };
}

/** One node's part in `shMany`, yielded as it ends. */
export interface NodeShResult {
  node: string;
  /** ok: exited 0; failed: exited otherwise; offline: not run; error: could not run it or lost; skipped: fail-fast. */
  status: "ok" | "failed" | "offline" | "error" | "skipped";
  ok: boolean;
  /** When it ran (ok, failed). */
  result?: ShResult;
  /** When it did not (offline, error, skipped). */
  error?: PythondError;
  /** offline: since when (ISO 8601). */
  offlineSince?: string;
}

/** Output kept up to a limit; counts everything. */
export class Kept {
  private chunks: Uint8Array[] = [];
  private kept = 0;
  total = 0;

  constructor(private readonly max = Number.POSITIVE_INFINITY) {}

  add(b: Uint8Array): void {
    this.total += b.length;
    if (this.kept >= this.max) return;
    const take = this.kept + b.length <= this.max ? b : b.subarray(0, this.max - this.kept);
    this.chunks.push(take);
    this.kept += take.length;
  }

  bytes(): Uint8Array {
    if (this.chunks.length === 1) return this.chunks[0]!;
    const out = new Uint8Array(this.kept);
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}

/** Transfers (put, get, writeFile): where it went and how much. */
export interface TransferSummary {
  /** The final path (on the node for put; here for get). */
  target: string;
  files: number;
  bytes: number;
  /** Bytes not sent again because an interrupted transfer had left them (resume). */
  resumed: number;
}

export type { JobResult };
