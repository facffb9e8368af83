/**
 * Starting a worker: python3 runs the embedded bootstrap in a new process session (setsid) with
 * no pipe left to the daemon once it is ready, so it outlives the daemon (DESIGN decision 1).
 * Readiness comes over its original stdout ("ready <pid>"), which the worker then replaces with
 * its capture pipe; a worker that fails to start says why on stderr before it exits.
 */
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { PythondError } from "../protocol/errors.ts";
import { VERSION } from "../protocol/version.ts";
import { ensurePrivateDir, sessionDataDir } from "../paths.ts";
import { materialiseBootstrap } from "./bundle.ts";

export interface SpawnOptions {
  name: string;
  runtime: string;
  python?: string;
  cwd?: string;
  /** End the session after this many seconds without requests (off when unset). */
  idleTimeout?: number;
  /** A warm spare (src/sessions/spare.ts): kept in `spares/`, apart from the sessions, until claimed. */
  spare?: boolean;
}

export interface Spawned {
  pid: number;
  recordPath: string;
  /** Resolves with the exit description when the worker ends while this daemon is its parent. */
  exited: Promise<string>;
}

const START_LIMIT_MS = 60_000;

export function workerPaths(runtime: string, name: string): { sock: string; record: string } {
  const dir = join(runtime, "sessions");
  let sock = join(dir, `${name}.sock`);
  // sun_path holds 108 bytes; long runtime dirs with long names fall back to a short hashed name.
  if (Buffer.byteLength(sock) > 100) sock = join(dir, `s-${Bun.hash(name).toString(16)}.sock`);
  return { sock, record: join(dir, `${name}.json`) };
}

export function describeExit(code: number | null, signal: string | number | null): string {
  if (signal) return `killed by ${signal}`;
  return `exited with code ${code}`;
}

export async function spawnWorker(opts: SpawnOptions): Promise<Spawned> {
  const python = opts.python || process.env.PYTHOND_PYTHON || "python3";
  const dir = ensurePrivateDir(join(opts.runtime, opts.spare ? "spares" : "sessions"));
  const { sock, record } = opts.spare
    ? { sock: join(dir, `${opts.name}.sock`), record: join(dir, `${opts.name}.json`) }
    : workerPaths(opts.runtime, opts.name);
  const entry = materialiseBootstrap(opts.runtime);
  const config = {
    name: opts.name,
    sock,
    record,
    secret: randomBytes(24).toString("hex"),
    session_dir: opts.spare ? null : sessionDataDir(opts.name),
    cwd: opts.cwd ?? process.cwd(),
    version: VERSION,
    idle_timeout: opts.idleTimeout ?? null,
    ...(opts.spare ? { spare: true, daemon_pid: process.pid } : {}),
  };
  let proc: ReturnType<typeof Bun.spawn>;
  try {
    proc = Bun.spawn([python, entry], {
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, PYTHOND_WORKER: JSON.stringify(config) },
    } as Parameters<typeof Bun.spawn>[1]);
  } catch (e) {
    throw new PythondError(
      "worker_start",
      `cannot start python '${python}': ${(e as Error).message} (set PYTHOND_PYTHON or use new --python PATH)`,
    );
  }
  const exited = proc.exited.then(() => describeExit(proc.exitCode, proc.signalCode));
  const stdout = proc.stdout as ReadableStream<Uint8Array>;
  const stderr = new Response(proc.stderr as ReadableStream<Uint8Array>).text();
  const ready = readReadyLine(stdout);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const limit = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), START_LIMIT_MS)));
  const pid = await Promise.race([ready, limit]);
  clearTimeout(timer);
  if (typeof pid !== "number") {
    if (pid === "timeout") {
      try {
        process.kill(-proc.pid, "SIGKILL");
      } catch {}
    }
    const why = await exited;
    const err = (await stderr).trim();
    const detail = pid === "timeout" ? "no answer within 60 s" : err || why;
    throw new PythondError("worker_start", `session '${opts.name}' failed to start: ${detail}`);
  }
  proc.unref();
  return { pid, recordPath: record, exited };
}

async function readReadyLine(stream: ReadableStream<Uint8Array>): Promise<number | null> {
  const reader = stream.getReader();
  let text = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return null;
    text += new TextDecoder().decode(value);
    const m = /^ready (\d+)\n/.exec(text);
    if (m) {
      reader.releaseLock();
      return Number(m[1]);
    }
  }
}
