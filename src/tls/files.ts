/**
 * Small file-system helpers for the TLS store: private directories, atomic writes, and a
 * short-lived lock around first-time key generation.
 *
 * Why the lock: cert.pem and key.pem are two files and cannot be renamed into place together.
 * If `pyctl cert` and `pyctl start` both find no certificate and generate at the same moment,
 * their renames could interleave and leave key A beside certificate B, a pair that no TLS stack
 * will load. Generation takes milliseconds, so the loser simply waits and reads the winner's pair.
 */
import {
  chmodSync,
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  renameSync,
  rmdirSync,
  statSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { PythondError } from "../protocol/errors.ts";

/** Create `dir` (and parents) and force mode 0700 on `dir` itself. */
export function ensurePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // mkdir's mode is filtered by the umask and ignored for a directory that already exists.
  if ((statSync(dir).mode & 0o777) !== 0o700) chmodSync(dir, 0o700);
}

/**
 * Write `text` to `path` atomically with `mode`: a temporary file in the same directory gets the
 * content and its final mode, is fsynced, then renamed over `path`. A reader sees the old file or
 * the new one, never a partial one, and a private key is never readable by others, even briefly.
 */
export function writeFileAtomic(path: string, text: string, mode: number): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${crypto.randomUUID().slice(0, 8)}.tmp`);
  const fd = openSync(tmp, "wx", 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    chmodSync(tmp, mode); // explicit: the open() mode above was filtered by the umask
    renameSync(tmp, path);
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {}
    throw err;
  }
}

/** True when `path` exists and is a regular file. */
export function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

const LOCK_STALE_MS = 10_000;
const LOCK_WAIT_MS = 15_000;

/**
 * Run `fn` while holding `lockDir` (created with mkdir, which is atomic), waiting up to
 * LOCK_WAIT_MS for another holder. A lock older than LOCK_STALE_MS is left over from a crashed
 * process and is broken. `fn` should re-check whether its work is still needed: the previous
 * holder has usually just done it.
 */
export async function withLock<T>(lockDir: string, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      mkdirSync(lockDir, { mode: 0o700 });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    try {
      if (Date.now() - statSync(lockDir).mtimeMs > LOCK_STALE_MS) {
        rmdirSync(lockDir);
        continue;
      }
    } catch {
      continue; // released between mkdir and stat: try again at once
    }
    if (Date.now() > deadline) throw new PythondError("tls_locked", `timed out waiting for ${lockDir}`);
    await Bun.sleep(10);
  }
  try {
    return await fn();
  } finally {
    try {
      rmdirSync(lockDir);
    } catch {}
  }
}
