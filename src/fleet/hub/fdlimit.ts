/**
 * A hub holds one descriptor per node link, so its open-file limit is its node limit. Linux starts
 * processes with a soft limit often far below the hard one (1024 vs 524288 on many systems): the
 * hub raises its soft limit to the hard one at start (any process may), and says how many nodes
 * that leaves room for. Through bun:ffi (libc getrlimit/setrlimit); where that is unavailable
 * (not Linux or macOS) it reports nothing and changes nothing.
 */
const RLIMIT_NOFILE = process.platform === "darwin" ? 8 : 7;
/** Descriptors the daemon needs besides node links: its sockets, workers, logs, clients. */
export const RESERVED_FDS = 1000;

export interface FdLimit {
  soft: number;
  hard: number;
  raised: boolean;
}

export function raiseFdLimit(): FdLimit | null {
  if (process.platform !== "linux" && process.platform !== "darwin") return null;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { dlopen, FFIType, ptr } = require("bun:ffi") as typeof import("bun:ffi");
    const libc = dlopen(process.platform === "darwin" ? "libc.dylib" : "libc.so.6", {
      getrlimit: { args: [FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
      setrlimit: { args: [FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
    });
    const buf = new BigUint64Array(2);
    if (libc.symbols.getrlimit(RLIMIT_NOFILE, ptr(buf)) !== 0) return null;
    const hard = buf[1]!;
    let raised = false;
    // RLIM_INFINITY (all ones) as hard: keep a sane finite soft limit.
    const target = hard > 1_048_576n ? 1_048_576n : hard;
    if (buf[0]! < target) {
      buf[0] = target;
      raised = libc.symbols.setrlimit(RLIMIT_NOFILE, ptr(buf)) === 0;
      libc.symbols.getrlimit(RLIMIT_NOFILE, ptr(buf));
    }
    const out = { soft: Number(buf[0]), hard: Number(hard), raised };
    libc.close();
    return out;
  } catch {
    return null;
  }
}

/** The log line: the limit and the nodes it allows. */
export function fdLimitMessage(l: FdLimit): string {
  const nodes = Math.max(0, l.soft - RESERVED_FDS);
  return `fleet: open-file limit ${l.soft}${l.raised ? " (soft limit raised to the hard limit)" : l.soft < l.hard ? "" : " (= the hard limit)"}: room for about ${nodes.toLocaleString("en-US")} node links (one descriptor each)`;
}
