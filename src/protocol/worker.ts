/**
 * The daemon <-> worker contract, TypeScript side, mirroring src/worker/py/_pythond/protocol.py:
 * the op names, the headers, the worker's record, and the one worker protocol version — read from
 * the Python module at build time, so the two sides cannot disagree on it. The framing is
 * src/link/frame.ts (mirrored by wire.py); the messages are listed in protocol.py's docstring.
 */
import protocolPy from "../worker/py/_pythond/protocol.py" with { type: "text" };

function pyConst(name: string): string {
  const m = new RegExp(`^${name} = (.+)$`, "m").exec(protocolPy);
  if (!m) throw new Error(`protocol.py defines no ${name}`);
  return m[1]!;
}

function pyTuple(name: string): readonly string[] {
  return [...pyConst(name).matchAll(/"([a-z]+)"/g)].map((m) => m[1]!);
}

/** Bump in protocol.py (only there) when the framing or any message changes. */
export const WORKER_PROTOCOL = Number(pyConst("WORKER_PROTOCOL"));

/** Requests every worker serves. */
export const CORE_OPS = pyTuple("CORE_OPS");
/** Requests served only by a worker with a terminal (PTY). */
export const TERMINAL_OPS = pyTuple("TERMINAL_OPS");
/** Frames the worker sends. */
export const WORKER_FRAMES = pyTuple("WORKER_FRAMES");

/** Every request op, spelled once for the daemon's side (the conformance test holds it to protocol.py). */
export const WORKER_OPS = [
  "hello", "claim", "run", "ack", "fire", "fork", "poll", "wait", "status", "vars", "complete", "int",
  "attach", "detach", "tin", "resize",
] as const;
export type WorkerOp = (typeof WORKER_OPS)[number];

/** A frame header: `op`, the request id when it answers or makes a request, and the op's fields. */
export interface WorkerHeader {
  op: string;
  rid?: number;
  [key: string]: unknown;
}

/** `reply` of a one-reply request: data on success, code and error on failure. */
export interface WorkerReply extends WorkerHeader {
  op: "reply";
  ok: boolean;
  data?: unknown;
  code?: string;
  error?: string;
}

/**
 * `<runtime>/sessions/<name>.json`, written by the worker (server.py `_write_record`, 0600) once
 * it listens; read by the daemon to connect and to adopt workers after a restart.
 */
export interface WorkerRecord {
  name: string;
  pid: number;
  pgid: number;
  python: string;
  created: string;
  sock: string;
  secret: string;
  worker_protocol: number;
  binary_version: string;
}
