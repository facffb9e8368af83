/**
 * What the daemon checks before it listens: every directory it will use (the socket's, the
 * runtime directory and its `sessions/` and `spares/`) is ours and closed to others, made 0700
 * when missing, refused with a clear error otherwise (src/secure-fs.ts); and every Unix socket
 * path it will need fits in sun_path, so a long PYTHOND_SOCK is refused at start-up instead of
 * making every later `new` fail.
 */
import { dirname, join } from "node:path";
import { PythondError } from "../protocol/errors.ts";
import { homeBase, runtimeDir, socketExplicit } from "../paths.ts";
import { checkSocketDir, privateDir } from "../secure-fs.ts";

/** sun_path is 108 bytes on Linux (104 on macOS and the BSDs), the final NUL included. */
const SUN_PATH_MAX = process.platform === "linux" ? 107 : 103;

/** The longest worker socket paths (src/worker/spawn.ts workerPaths, src/daemon/spare.ts). */
function longestSocketPaths(sock: string): string[] {
  const runtime = runtimeDir(sock);
  return [sock, join(runtime, "sessions", `s-${"f".repeat(16)}.sock`), join(runtime, "spares", `spare-${"f".repeat(12)}.sock`)];
}

export function checkSocketLengths(sock: string): void {
  for (const p of longestSocketPaths(sock)) {
    const n = Buffer.byteLength(p);
    if (n > SUN_PATH_MAX) {
      const over = n - SUN_PATH_MAX;
      throw new PythondError(
        "usage",
        `socket path too long: ${p} is ${n} bytes, the limit for a Unix socket is ${SUN_PATH_MAX}; ` +
          `choose a PYTHOND_SOCK at least ${over} bytes shorter`,
      );
    }
  }
}

/** Prepares and checks the daemon's directories; returns the runtime directory. */
export function prepareRuntime(sock: string): string {
  checkSocketLengths(sock);
  const explicit = socketExplicit();
  const dir = dirname(sock);
  if (!checkSocketDir(dir, explicit)) {
    privateDir(dir);
    checkSocketDir(dir, explicit);
  }
  const runtime = privateDir(runtimeDir(sock));
  privateDir(join(runtime, "sessions"));
  privateDir(join(runtime, "spares"));
  return runtime;
}

/**
 * ~/.pythond and ~/.pythond/sessions, 0700 (other users must not list session names). History is
 * a convenience: a home we cannot use is reported (returned), not fatal.
 */
export function prepareHome(): string | null {
  try {
    privateDir(homeBase());
    privateDir(join(homeBase(), "sessions"));
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}
