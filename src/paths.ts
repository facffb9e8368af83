/**
 * Where things live (REFERENCE "Names, files, environment"):
 *  - socket: $PYTHOND_SOCK; else $XDG_RUNTIME_DIR/pythond.sock when that directory is ours and 0700;
 *    else $TMPDIR/pythond-$UID/pythond.sock (directory 0700);
 *  - runtime files beside the socket in `pythond/`: access.log, the start lock, worker sockets and
 *    their records (`sessions/<name>.json`), the extracted worker bootstrap;
 *  - per-session history in ~/.pythond/sessions/<name>/.
 */
import { lstatSync } from "node:fs";
import { dirname, join } from "node:path";
import { tmpdir, homedir } from "node:os";
import { privateDir } from "./secure-fs.ts";

function uid(): number {
  return process.getuid?.() ?? 0;
}

function ownedPrivateDir(dir: string): boolean {
  try {
    const st = lstatSync(dir); // a link there is not trusted: the fallback is used instead
    return st.isDirectory() && st.uid === uid() && (st.mode & 0o777) === 0o700;
  } catch {
    return false;
  }
}

export function socketPath(): string {
  const env = process.env.PYTHOND_SOCK;
  if (env) return env;
  const xdg = process.env.XDG_RUNTIME_DIR;
  if (xdg && ownedPrivateDir(xdg)) return join(xdg, "pythond.sock");
  return join(process.env.TMPDIR || tmpdir(), `pythond-${uid()}`, "pythond.sock");
}

/**
 * Creates dir 0700 (parents too), or checks the existing one: ours, not a link, not writable by
 * others; refused otherwise, never chmod'ed into shape (src/secure-fs.ts).
 */
export function ensurePrivateDir(dir: string): string {
  return privateDir(dir);
}

/** Whether the socket path was chosen by the user (PYTHOND_SOCK) rather than derived. */
export function socketExplicit(): boolean {
  return Boolean(process.env.PYTHOND_SOCK);
}

export function runtimeDir(sock = socketPath()): string {
  return join(dirname(sock), "pythond");
}

export function workerRecordsDir(sock = socketPath()): string {
  return join(runtimeDir(sock), "sessions");
}

/** Exists while a daemon restarts in place (clients retry instead of failing). */
export function restartMarker(runtime = runtimeDir()): string {
  return join(runtime, "restarting");
}

export function homeBase(): string {
  return join(process.env.HOME || homedir(), ".pythond");
}

export function sessionDataDir(name: string): string {
  return join(homeBase(), "sessions", name);
}
