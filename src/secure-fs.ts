/**
 * Directories and files that decide whose code runs where (sockets, records, bootstrap files,
 * history, TLS material, proxy tokens) are trusted only after lstat says so, as OpenSSH and tmux do
 * for theirs: owned by the current user, not a symbolic link, not writable by group or others.
 * A directory that fails is refused with an error naming the path, its owner and its mode; it is
 * never chmod'ed into shape and used (another user who made it could still swap what is inside).
 *
 * The ancestors of a socket's directory matter too: whoever may write to a directory on the path
 * may rename ours away and put theirs in its place between our check and our use. Each ancestor
 * must be owned by root or by us, and one that others may write to must be sticky (like /tmp,
 * where others cannot rename what is ours). With that, nothing another unprivileged user does
 * after the check changes what the path leads to, so the checks need not be repeated on an open
 * descriptor (see checkDaemonSocket).
 */
import { fchmodSync, closeSync, constants, lstatSync, mkdirSync, openSync, realpathSync, type Stats } from "node:fs";
import { dirname } from "node:path";
import { PythondError } from "./protocol/errors.ts";

export function myUid(): number {
  return process.getuid?.() ?? 0;
}

function mode(st: Stats): string {
  return `0${(st.mode & 0o7777).toString(8).padStart(3, "0")}`;
}

function unsafe(path: string, why: string, st?: Stats): PythondError {
  const detail = st ? ` (owner uid ${st.uid}, mode ${mode(st)})` : "";
  return new PythondError("unsafe_path", `refusing ${path}: ${why}${detail}; it must be a directory of yours (uid ${myUid()}) that others cannot write to`);
}

/**
 * Throws unless `dir` is a real directory (not a link) owned by one of `owners` and not writable by
 * group or others. Returns its lstat, or null when it does not exist.
 */
export function checkDir(dir: string, owners: number[] = [myUid()]): Stats | null {
  let st: Stats | undefined;
  try {
    st = lstatSync(dir, { throwIfNoEntry: false }); // no exception for the common "absent": cheaper
  } catch (e) {
    throw unsafe(dir, `cannot inspect it: ${(e as Error).message}`);
  }
  if (!st) return null;
  if (st.isSymbolicLink()) throw unsafe(dir, "it is a symbolic link", st);
  if (!st.isDirectory()) throw unsafe(dir, "it is not a directory", st);
  if (!owners.includes(st.uid)) throw unsafe(dir, "it belongs to another user", st);
  if (st.mode & 0o022) throw unsafe(dir, "group or others can write to it", st);
  return st;
}

/**
 * Every directory above `dir` (resolved) must be owned by root or us, and sticky where others may
 * write to it: see the header.
 */
export function checkAncestors(dir: string): void {
  let real: string;
  try {
    real = realpathSync.native(dir);
  } catch {
    return; // does not exist yet: its creator (privateDir) checks again once it does
  }
  for (let p = dirname(real); ; p = dirname(p)) {
    const st = lstatSync(p);
    const trusted = st.uid === 0 || st.uid === myUid();
    const openToOthers = (st.mode & 0o022) !== 0 && (st.mode & 0o1000) === 0;
    if (!trusted || openToOthers) {
      throw new PythondError(
        "unsafe_path",
        `refusing ${dir}: the directory ${p} above it (owner uid ${st.uid}, mode ${mode(st)}) lets another user replace it; ` +
          "use a location whose parent directories belong to you or root and are not writable by others (or sticky, like /tmp)",
      );
    }
    if (p === dirname(p)) return;
  }
}

/**
 * Creates `dir` 0700 if it is missing (parents too: new ones are ours), or checks the one there
 * (checkDir). An existing one of ours that others may read but not write (an older version made
 * ~/.pythond 0755) is tightened to 0700 through a descriptor opened without following links.
 */
export function privateDir(dir: string): string {
  let st = checkDir(dir);
  if (!st) {
    try {
      mkdirSync(dirname(dir), { recursive: true, mode: 0o700 });
      mkdirSync(dir, { mode: 0o700 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") {
        throw new PythondError("io", `cannot create ${dir}: ${(e as Error).message}`);
      }
    }
    st = checkDir(dir)!; // made by us just now, or by whoever won the race: checked either way
  }
  if (st.mode & 0o077) {
    const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
    try {
      fchmodSync(fd, 0o700);
    } finally {
      closeSync(fd);
    }
  }
  return dir;
}

/**
 * The directory of the daemon's socket: checkDir and checkAncestors; when the user named the
 * socket (PYTHOND_SOCK), a root-owned sticky directory such as /tmp is accepted too (others can
 * neither remove nor rename what is ours there, and the socket's own owner is checked).
 */
export function checkSocketDir(dir: string, explicit: boolean): Stats | null {
  if (explicit) {
    try {
      const st = lstatSync(dir);
      if (st.isDirectory() && st.uid === 0 && st.mode & 0o1000) {
        checkAncestors(dir);
        return st;
      }
    } catch {}
  }
  const st = checkDir(dir, explicit ? [myUid(), 0] : [myUid()]);
  if (st) checkAncestors(dir);
  return st;
}

/**
 * The client's check before it sends anything to a local daemon: the socket's directory and its
 * ancestors pass the checks above, and the socket file belongs to us (root too when the user
 * named the socket with PYTHOND_SOCK: a root daemon is then what they asked for). A missing
 * socket is left to the connect (which says there is no daemon).
 *
 * Why lstat and not SO_PEERCRED: Bun's WebSocket client gives no access to its descriptor, so a
 * peer check would need a second connection (a probe) and bun:ffi, ~2-3 ms on a ~10 ms `pysh
 * run`, and would still be a check of another connection than the one used. A socket file's owner
 * is whoever bound it, and with every directory on its path closed to other users (checked here)
 * nobody else can put another socket at that path between this check and the connect.
 */
export function checkDaemonSocket(sock: string, explicit: boolean): void {
  const owners = explicit ? [myUid(), 0] : [myUid()];
  if (!checkSocketDir(dirname(sock), explicit)) return;
  let st: Stats | undefined;
  try {
    st = lstatSync(sock, { throwIfNoEntry: false });
  } catch {}
  if (!st) return;
  if (!st.isSocket() || !owners.includes(st.uid)) {
    throw new PythondError(
      "unsafe_path",
      `refusing ${sock}: it is ${st.isSocket() ? "a socket" : "not a socket"} of uid ${st.uid}, not a daemon of yours (uid ${myUid()}); nothing was sent`,
    );
  }
}
