/**
 * The start lock: `<runtime>/daemon.lock`, held with flock(2) for the daemon's whole life. The
 * kernel drops it when the daemon dies however it dies, so a stale lock never blocks a start, and
 * two daemons racing to start cannot both pass (the second sees the lock, then the live socket).
 * Without flock (no bun:ffi), an O_EXCL pid file is the fallback.
 */
import { openSync, writeFileSync, readFileSync, unlinkSync, closeSync, ftruncateSync } from "node:fs";
import { join } from "node:path";
import { isAlive } from "../sessions/alive.ts";

const LOCK_EX = 2;
const LOCK_NB = 4;

export interface StartLock {
  release(): void;
}

function flockFn(): ((fd: number, op: number) => number) | null {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { dlopen, FFIType } = require("bun:ffi") as typeof import("bun:ffi");
    const lib = dlopen(process.platform === "darwin" ? "libc.dylib" : "libc.so.6", {
      flock: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    });
    return (fd, op) => lib.symbols.flock(fd, op) as number;
  } catch {
    return null;
  }
}

/** Returns the lock, or null when another live daemon holds it. */
export function acquireStartLock(runtime: string): StartLock | null {
  const path = join(runtime, "daemon.lock");
  const flock = flockFn();
  if (flock) {
    const fd = openSync(path, "a+", 0o600);
    if (flock(fd, LOCK_EX | LOCK_NB) !== 0) {
      closeSync(fd);
      return null;
    }
    ftruncateSync(fd, 0);
    writeFileSync(fd, `${process.pid}\n`);
    return { release: () => closeSync(fd) };
  }
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, "wx", 0o600);
      writeFileSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return { release: () => unlinkSync(path) };
    } catch {
      const pid = Number(readFileSync(path, "utf8").trim());
      if (pid && isAlive(pid)) return null;
      unlinkSync(path); // the holder died: the lock is stale
    }
  }
  return null;
}
