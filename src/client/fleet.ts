/**
 * The fleet half of the TypeScript library (issue 21): shell commands and jobs on nodes, and
 * fan-out, as pysh does them (src/cli/fleet/) with the same core: each command is one tunnel
 * through the hub (src/fleet/io/client-tunnel.ts, client.ts) on a connection of its own, so many
 * run at once whatever the client's queue of session calls holds. PythondClient (lib.ts) exposes
 * these as methods; files are in fleet-files.ts.
 *
 * Output is credited to the node only once taken here (collected, or pulled from a ShStream), so
 * a slow consumer slows the command on the node rather than growing memory anywhere.
 */
import { CommandLost, jobRequest, runSh, startDetached, type OutputSinks, type ShSinks } from "../fleet/io/client.ts";
import { openTunnel } from "../fleet/io/client-tunnel.ts";
import type { Duplex } from "../fleet/duplex.ts";
import { PythondError } from "../protocol/errors.ts";
import { checkNodeId } from "../protocol/fleet.ts";
import type { IoSpec } from "../protocol/fleet-io.ts";
import type { Client } from "./connect.ts";
import { exitOf, jobState, Kept, ShResult, type JobInfo, type JobState, type ShExit } from "./fleet-results.ts";

export type Opener = () => Promise<Client>;

export type Stdin = string | Uint8Array | AsyncIterable<Uint8Array> | ReadableStream<Uint8Array>;

export interface ShOptions {
  /** SIGTERM the command's process group after this long, SIGKILL 3 s later; the result says timedOut (exit 124). */
  timeoutMs?: number;
  /** Working directory on the node (default: the node user's home). */
  cwd?: string;
  /** Added to the node's environment. */
  env?: Record<string, string>;
  /** The command's stdin (default: none, /dev/null). */
  stdin?: Stdin;
  /** Keep at most this many bytes of each stream (the rest is counted in stdoutBytes/stderrBytes). */
  maxOutputBytes?: number;
  /** Called with the job id once the node started the command. */
  onStart?: (id: string) => void;
}

/** The link to the node was lost mid-command: the command runs on there if the node is up. */
export class NodeCommandLost extends PythondError {
  constructor(
    readonly node: string,
    readonly jobId: string,
    /** Bytes of stdout/stderr received before the loss. */
    readonly offsets: { out: number; err: number },
  ) {
    super(
      "node_offline",
      `lost the link to node '${node}' during the command (job ${jobId}): if the node is still up the command runs on there; ` +
        `its output and end: job("${node}", "${jobId}", { wait: true })`,
    );
  }
}

function lostError(node: string, e: unknown): unknown {
  if (e instanceof CommandLost && e.id) return new NodeCommandLost(node, e.id, e.offsets);
  if (e instanceof CommandLost) return new PythondError("node_offline", `lost the link to node '${node}' before the command started`);
  return e;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function shSpec(command: string, opts: ShOptions): Extract<IoSpec, { kind: "sh" }> {
  if (typeof command !== "string" || command.trim() === "") throw new PythondError("usage", "sh needs a command (a non-empty string)");
  if (opts.timeoutMs !== undefined && !(opts.timeoutMs > 0)) throw new PythondError("usage", `timeoutMs must be > 0 (got ${opts.timeoutMs})`);
  for (const [k, v] of Object.entries(opts.env ?? {})) {
    if (!ENV_NAME.test(k) || typeof v !== "string") throw new PythondError("usage", `env: ${JSON.stringify(k)} must be a NAME with a string value`);
  }
  return { kind: "sh", command, cwd: opts.cwd, env: opts.env, timeoutMs: opts.timeoutMs === undefined ? undefined : Math.ceil(opts.timeoutMs) };
}

const PIECE = 256 << 10;

async function* pieces(b: Uint8Array): AsyncIterable<Uint8Array> {
  for (let at = 0; at < b.length; at += PIECE) yield b.subarray(at, at + PIECE);
}

export function chunksOf(s: Stdin | undefined): AsyncIterable<Uint8Array> | undefined {
  if (s === undefined) return undefined;
  if (typeof s === "string") return pieces(new TextEncoder().encode(s));
  if (s instanceof Uint8Array) return pieces(s);
  return s as AsyncIterable<Uint8Array>;
}

async function tunnel(open: Opener, node: string, spec: IoSpec) {
  return openTunnel(checkNodeId(node), spec, { client: await open() });
}

/** Runs a command attached, output to `sinks`; the job id and its end. */
async function attached(open: Opener, node: string, command: string, opts: ShOptions, sinks: OutputSinks, onIo?: (io: Duplex) => void) {
  const stdin = chunksOf(opts.stdin);
  const io = await tunnel(open, node, { ...shSpec(command, opts), stdin: stdin !== undefined });
  onIo?.(io);
  const s: ShSinks = { ...sinks, stdin, started: (id) => opts.onStart?.(id) };
  try {
    return await runSh(io, s);
  } catch (e) {
    throw lostError(node, e);
  } finally {
    io.close();
  }
}

export async function sh(open: Opener, node: string, command: string, opts: ShOptions = {}): Promise<ShResult> {
  const out = new Kept(opts.maxOutputBytes);
  const err = new Kept(opts.maxOutputBytes);
  const { id, result } = await attached(open, node, command, opts, { stdout: (b) => out.add(b), stderr: (b) => err.add(b) });
  return new ShResult(exitOf(node, id, result, out.total, err.total), out.bytes(), err.bytes());
}

/** Starts a command that runs on by itself; its id for `job`. */
export async function shDetached(open: Opener, node: string, command: string, opts: Omit<ShOptions, "stdin" | "maxOutputBytes"> = {}): Promise<string> {
  try {
    return (await startDetached(await tunnel(open, node, { ...shSpec(command, opts), detach: true }))).id;
  } catch (e) {
    throw lostError(node, e);
  }
}

export interface ShChunk {
  fd: 1 | 2;
  data: Uint8Array;
}

/** Bytes taken from the node and not yet pulled by the reader before the node is held back. */
const STREAM_HIGH = 1 << 20;

/**
 * A command's output as it is produced (`for await (const { fd, data } of stream)`); `result`
 * settles with its end. Leaving the loop early closes the tunnel: the command runs on (`job`).
 */
export class ShStream implements AsyncIterable<ShChunk> {
  readonly result: Promise<ShExit>;
  private queue: ShChunk[] = [];
  private queued = 0;
  private wake?: () => void;
  private room: (() => void)[] = [];
  private done = false;
  private cancelled = false;
  private io?: Duplex;

  constructor(open: Opener, node: string, command: string, opts: Omit<ShOptions, "maxOutputBytes"> = {}) {
    let out = 0;
    let err = 0;
    const push = (fd: 1 | 2, data: Uint8Array): Promise<void> | void => {
      if (this.cancelled) return; // the reader left: what is still in flight is dropped
      if (fd === 1) out += data.length;
      else err += data.length;
      this.queue.push({ fd, data });
      this.queued += data.length;
      this.wake?.();
      if (this.queued < STREAM_HIGH || this.done) return;
      return new Promise((r) => this.room.push(r));
    };
    this.result = attached(open, node, command, opts, { stdout: (b) => push(1, b), stderr: (b) => push(2, b) }, (io) => {
      this.io = io;
      if (this.cancelled) io.close(); // cancelled while the tunnel was opening
    }).then(
      ({ id, result }) => exitOf(node, id, result, out, err),
    );
    this.result.catch(() => {}); // a reader that only iterates learns of a failure from the loop
    const finish = () => {
      this.done = true;
      this.wake?.();
    };
    this.result.then(finish, finish);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<ShChunk> {
    try {
      for (;;) {
        const c = this.queue.shift();
        if (c) {
          this.queued -= c.data.length;
          if (this.queued < STREAM_HIGH) for (const r of this.room.splice(0)) r();
          yield c;
          continue;
        }
        if (this.done) {
          await this.result; // rethrows a failed command
          return;
        }
        await new Promise<void>((r) => (this.wake = r));
        this.wake = undefined;
      }
    } finally {
      if (!this.done) this.cancel();
    }
  }

  /** Stops reading: the tunnel closes and the command runs on (its output kept for `job`). */
  cancel(): void {
    this.cancelled = true;
    this.done = true;
    for (const r of this.room.splice(0)) r();
    this.io?.close();
  }
}

export interface JobOptions {
  /** Wait for the job to end; its result with the output kept from the start. */
  wait?: boolean;
  /** End the job (SIGTERM to its group, SIGKILL 3 s later); its result with the output after the kill. */
  kill?: boolean;
  /** With wait: give up after this long (a timeout error; the job runs on). */
  timeoutMs?: number;
}

export async function jobs(open: Opener, node: string): Promise<JobInfo[]> {
  const r = await jobRequest(await tunnel(open, node, { kind: "job", action: "list" }), { stdout: () => {}, stderr: () => {} });
  return r.t === "jobs" ? r.jobs : [];
}

export async function job(open: Opener, node: string, id: string, opts: JobOptions = {}): Promise<JobState | ShResult> {
  if (opts.wait && opts.kill) throw new PythondError("usage", "job: wait or kill, not both");
  if (typeof id !== "string" || !/^[0-9A-Za-z_-]{1,64}$/.test(id)) throw new PythondError("usage", `invalid job id ${JSON.stringify(id)}`);
  const action = opts.kill ? "kill" : opts.wait ? "wait" : "info";
  const out = new Kept();
  const err = new Kept();
  const io = await tunnel(open, node, { kind: "job", action, id });
  let timedOut = false;
  const timer = opts.wait && opts.timeoutMs !== undefined ? setTimeout(() => ((timedOut = true), io.close()), opts.timeoutMs) : undefined;
  try {
    const r = await jobRequest(io, { stdout: (b) => out.add(b), stderr: (b) => err.add(b) });
    if (r.t === "info") return jobState(node, r.job, out.bytes(), err.bytes());
    if (r.t === "exit") return new ShResult(exitOf(node, r.id, r.result, out.total, err.total), out.bytes(), err.bytes());
    throw new PythondError("internal", `unexpected answer '${r.t}' to job ${action}`);
  } catch (e) {
    if (timedOut) throw new PythondError("timeout", `job ${id} on '${node}' still running after ${opts.timeoutMs} ms (it runs on; nothing was stopped)`);
    if (e instanceof CommandLost) throw new PythondError("node_offline", `lost the link to node '${node}' while asking for job ${id}`);
    throw e;
  } finally {
    if (timer) clearTimeout(timer);
    io.close();
  }
}
