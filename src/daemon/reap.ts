/**
 * Children inherited through `pyctl restart`: the daemon restarts in place with execve (same pid),
 * so the workers and the warm spare the previous image started stay its children, but this image's
 * runtime never waits for them: one that ends would stay a zombie until the daemon exits. At start
 * (Linux: /proc lists a process's children) we note the children we already have -- only ever
 * inherited ones, a fresh daemon has none -- and reap exactly those pids (waitpid with WNOHANG)
 * once a second until none is left. Bun's own children (spawned later) are never touched.
 */
import { readdirSync, readFileSync } from "node:fs";

const WNOHANG = 1;

function inheritedChildren(): number[] {
  const pids: number[] = [];
  try {
    for (const t of readdirSync("/proc/self/task")) {
      const text = readFileSync(`/proc/self/task/${t}/children`, "utf8").trim();
      if (text) pids.push(...text.split(/\s+/).map(Number));
    }
  } catch {
    return []; // no /proc (macOS): nothing we can list
  }
  return pids;
}

export function reapInherited(): void {
  let pending = inheritedChildren();
  if (pending.length === 0) return;
  let waitpid: (pid: number) => number;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { dlopen, FFIType } = require("bun:ffi") as typeof import("bun:ffi");
    const lib = dlopen(process.platform === "darwin" ? "libc.dylib" : "libc.so.6", {
      waitpid: { args: [FFIType.i32, FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
    });
    waitpid = (pid) => lib.symbols.waitpid(pid, null, WNOHANG) as number;
  } catch {
    return;
  }
  const timer = setInterval(() => {
    pending = pending.filter((pid) => waitpid(pid) === 0); // 0: still running; pid or -1: gone
    if (pending.length === 0) clearInterval(timer);
  }, 1000);
  timer.unref();
}
