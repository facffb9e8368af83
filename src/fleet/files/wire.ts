/**
 * The file transfer conversation (`pysh put` / `pysh get`), the same both ways: the side that has
 * the files sends, the other receives. Text messages are JSON control records, binary messages are
 * file bytes in order.
 *
 *   sender                               receiver
 *   {t:"root", kind, name, recursive} →
 *                                      ← {t:"root", path}          (where it goes) or {t:"err"}
 *   {t:"entry", kind:"file", path, size, mode, mtime} →
 *                                      ← {t:"at", offset}          (resume point; 0 = from scratch)
 *   <bytes from offset>… {t:"end", sha256} →
 *                                      ← {t:"ok", bytes, resumed}  (verified and renamed) or {t:"err"}
 *   {t:"entry", kind:"dir"|"symlink", path, mode|target} →
 *                                      ← {t:"ok"}
 *   {t:"done"} →                       ← {t:"done", files, bytes}
 *
 * Either side may send {t:"err", code, message} instead of what comes next and close; the other
 * side then fails with that same error. `path` of an entry is relative to the root ("" = the root).
 */
import { PythondError, type ErrorCode } from "../../protocol/errors.ts";
import type { Duplex, Msg } from "../duplex.ts";

export type Kind = "file" | "dir" | "symlink";

export type FileMsg =
  | { t: "root"; kind: Kind; name: string; recursive: boolean }
  | { t: "root"; path: string }
  | { t: "entry"; kind: "file"; path: string; size: number | null; mode: number; mtime: number }
  | { t: "entry"; kind: "dir"; path: string; mode: number }
  | { t: "entry"; kind: "symlink"; path: string; target: string }
  | { t: "at"; offset: number }
  | { t: "end"; sha256: string; size: number }
  | { t: "ok"; bytes?: number; resumed?: number }
  | { t: "done"; files?: number; bytes?: number }
  | { t: "err"; code: ErrorCode; message: string };

/**
 * Bytes of file data per message. 1 MiB rather than less: a quarter of the frames, acks and reads
 * per byte, and this machine's memcpy has a slow path for pieces under ~512 KiB whose source and
 * destination are not equally aligned (what Bun's own buffering of a message does); with the 4 MiB
 * tunnel window four chunks are in flight.
 */
export const CHUNK = 1 << 20;

/**
 * The one buffer a file is sent from when the transport writes its framing in place (Duplex.room):
 * `lead` unused bytes, then `room` for the framing, the data at `at`, a multiple of 64: the
 * kernel's copy into memory (the read) is ~4x slower on this machine when it is not.
 */
export function framing(room: number, chunk: number): { block: Uint8Array; lead: number; at: number } {
  const lead = (64 - (room % 64)) % 64;
  return { block: new Uint8Array(lead + room + chunk), lead, at: lead + room };
}

export function encode(m: FileMsg): string {
  return JSON.stringify(m);
}

/** The next control message; binary where one was expected, or the peer gone, is an error. */
export async function recvControl(io: Duplex): Promise<FileMsg> {
  const m = await io.recv();
  return control(m);
}

export function control(m: Msg | null): FileMsg {
  if (m === null) throw new PythondError("transfer_failed", "the connection closed before the transfer finished");
  if (typeof m !== "string") throw new PythondError("transfer_failed", "unexpected data in the transfer");
  let msg: FileMsg;
  try {
    msg = JSON.parse(m) as FileMsg;
  } catch {
    throw new PythondError("transfer_failed", "bad transfer message");
  }
  if (msg.t === "err") throw new PythondError(msg.code, msg.message);
  return msg;
}

/** Tells the peer why we stop (best effort: it may be gone), then closes. */
export async function fail(io: Duplex, e: unknown): Promise<never> {
  const err = PythondError.from(e);
  try {
    await io.send(encode({ t: "err", code: err.code, message: err.message }));
  } catch {
    // the peer is gone already; our caller still learns why
  }
  io.close();
  throw err;
}

/** A file system error as a transfer error a user can act on. */
export function fsError(e: unknown, path: string, doing: string): PythondError {
  if (e instanceof PythondError) return e;
  const code = (e as NodeJS.ErrnoException).code;
  switch (code) {
    case "ENOENT":
      return new PythondError("not_found", `no such file or directory: ${path}`);
    case "EACCES":
    case "EPERM":
      return new PythondError("permission_denied", `permission denied ${doing} ${path}`);
    case "EROFS":
      return new PythondError("permission_denied", `read-only file system: cannot write ${path}`);
    case "ENOSPC":
    case "EDQUOT":
      return new PythondError("no_space", `no space left on the device ${doing} ${path}`);
    case "EISDIR":
      return new PythondError("is_directory", `is a directory: ${path}`);
    case "ENOTDIR":
      return new PythondError("not_directory", `not a directory: ${path}`);
    default:
      return new PythondError("io", `${doing} ${path}: ${(e as Error).message}`);
  }
}

/** send() for a buffer laid out for the transport's framing (Duplex.sendFramed). */
export async function sendFramed(io: Duplex, buf: Uint8Array): Promise<void> {
  try {
    await io.sendFramed!(buf);
  } catch (e) {
    await peerError(io, e);
  }
}

/**
 * Sends; when the peer has closed (it gave up: disk full, a checksum mismatch...), fails with the
 * error the peer sent before closing rather than a bare "connection closed".
 */
export async function send(io: Duplex, m: Msg | FileMsg): Promise<void> {
  try {
    await io.send(typeof m === "string" || m instanceof Uint8Array ? m : encode(m));
  } catch (e) {
    await peerError(io, e);
  }
}

/** A send failed because the peer closed: the error it sent before closing, else `e`. */
async function peerError(io: Duplex, e: unknown): Promise<never> {
  for (;;) {
    const r = await io.recv(); // the peer closed: this ends (null) after what it queued
    if (r === null) throw e;
    if (typeof r === "string") control(r); // throws the peer's `err`
  }
}
