/**
 * The receiving side of a transfer (the node for `put`, the client for `get`). Where things go
 * follows cp/scp: into an existing directory under the source's name, else to the path given
 * (whose parent must exist). Each file is written to a hidden part file beside its final name
 * (`.<name>.<tag>.pysh-part`, the tag derived from the source's size, mtime and mode), hashed as it
 * arrives, and renamed over the final name only once the sender's SHA-256 matches, with the
 * source's mode bits. A transfer cut off leaves the part file: the next one for the same source
 * finds it, hashes what is there and asks the sender to go on from its end (`resumed`). A failed
 * write (disk full, no permission) or a checksum mismatch removes the part file: nothing
 * half-written is left under any name, and the error goes back to the sender.
 */
import { chmod, lstat, mkdir, open, rename, rm, stat, symlink, unlink, type FileHandle } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { createHash, randomBytes } from "node:crypto";
import type { Stats } from "node:fs";
import { garbage } from "../../link/garbage.ts";
import { recycle } from "../../link/recycle.ts";
import { PythondError } from "../../protocol/errors.ts";
import type { Duplex } from "../duplex.ts";
import { CHUNK, control, fail, fsError, recvControl, send, type FileMsg } from "./wire.ts";

export interface ReceiveOptions {
  /** Go on from a part file left by an interrupted transfer of the same source (default true). */
  resume?: boolean;
  /** For `-`: where the bytes of a single file go (stdout); called in order, awaited. */
  stdout?: (bytes: Uint8Array) => Promise<void> | void;
  onProgress?(path: string, done: number, size: number | null): void;
}

export interface ReceiveSummary {
  /** The final path of the root (file or directory); "-" for stdout. */
  target: string;
  files: number;
  bytes: number;
  /** Bytes that were already there from an interrupted transfer. */
  resumed: number;
  resumedFiles: string[];
}

type FileEntry = Extract<FileMsg, { t: "entry"; kind: "file" }>;

async function statOrNull(p: string): Promise<Stats | null> {
  try {
    return await stat(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw fsError(e, p, "checking");
  }
}

/** Where the root goes, as cp decides it; throws a clear error when it cannot go there. */
async function resolveTarget(dest: string, kind: string, name: string): Promise<string> {
  const st = await statOrNull(dest);
  if (st?.isDirectory()) return join(dest, name);
  if (st && kind === "dir") throw new PythondError("not_directory", `${dest} exists and is not a directory`);
  const parent = dirname(dest);
  const ps = await statOrNull(parent);
  if (!ps) throw new PythondError("not_found", `no such directory: ${parent}`);
  if (!ps.isDirectory()) throw new PythondError("not_directory", `not a directory: ${parent}`);
  return dest;
}

export async function receiveTree(io: Duplex, dest: string, opts: ReceiveOptions = {}): Promise<ReceiveSummary> {
  const sum: ReceiveSummary = { target: dest, files: 0, bytes: 0, resumed: 0, resumedFiles: [] };
  try {
    const root = await recvControl(io);
    if (root.t !== "root" || !("kind" in root)) throw new PythondError("transfer_failed", "the transfer did not start with its root");
    if (dest === "-") {
      if (root.kind !== "file") throw new PythondError("usage", "a directory cannot be written to stdout");
    } else sum.target = await resolveTarget(dest, root.kind, root.name);
    await send(io, { t: "root", path: sum.target });
    // directories get their own mode last: a read-only one must stay writable until it is filled
    const dirModes: [string, number][] = [];
    for (;;) {
      const m = await recvControl(io);
      if (m.t === "done") break;
      if (m.t !== "entry") throw new PythondError("transfer_failed", `unexpected '${m.t}' in the transfer`);
      const path = m.path ? await inside(sum.target, m.path) : sum.target;
      if (m.kind === "dir") {
        await makeDir(path, m.mode);
        dirModes.push([path, m.mode & MODE_MASK]);
        await send(io, { t: "ok" });
      } else if (m.kind === "symlink") {
        await rm(path, { force: true }).catch(() => {});
        await symlink(m.target, path).catch((e) => {
          throw fsError(e, path, "writing");
        });
        await send(io, { t: "ok" });
      } else if (dest === "-") await receiveToStream(io, m, opts, sum);
      else await receiveFile(io, path, m, opts, sum);
    }
    for (const [p, mode] of dirModes.reverse()) {
      await chmod(p, mode).catch((e) => {
        throw fsError(e, p, "writing");
      });
    }
    await send(io, { t: "done", files: sum.files, bytes: sum.bytes });
  } catch (e) {
    return fail(io, e);
  }
  io.close();
  return sum;
}

/**
 * A chunk done with: given back when it came from src/link/recycle.ts (a node link's framing),
 * else counted as garbage (a message from Bun's WebSocket client, pysh's: a fresh 1 MiB buffer;
 * a 1 GiB put grew RSS by ~80 MB before a collection: src/link/garbage.ts).
 */
function received(d: Uint8Array, done: boolean): void {
  if (done && recycle(d)) return;
  garbage(d.length);
}

/** setuid/setgid are not carried over (as cp without -p: the owner is not the same). */
const MODE_MASK = 0o1777;

/**
 * The path of an entry under the root. The sender may be the other machine (`get`): a path never
 * climbs out (`..`), and never goes through a symlink (one sent earlier in the same tree could
 * point anywhere).
 */
async function inside(root: string, rel: string): Promise<string> {
  const parts = rel.split("/").filter((p) => p !== "" && p !== "." && p !== "..");
  let at = root;
  for (const p of parts.slice(0, -1)) {
    at = join(at, p);
    const st = await lstat(at).catch(() => null);
    if (st && !st.isDirectory()) throw new PythondError("transfer_failed", `refusing to write through ${at} (not a directory)`);
  }
  return join(root, ...parts);
}

async function makeDir(path: string, mode: number): Promise<void> {
  try {
    await mkdir(path, { mode: mode | 0o700 }); // we must be able to fill it; its own bits after
  } catch (e) {
    const st = (e as NodeJS.ErrnoException).code === "EEXIST" ? await lstat(path) : null;
    if (!st?.isDirectory()) throw st ? new PythondError("not_directory", `${path} exists and is not a directory`) : fsError(e, path, "creating");
  }
  await chmod(path, mode | 0o700).catch((e) => {
    throw fsError(e, path, "writing");
  });
}

/**
 * Part files being written in this process. A transfer cut off by a dropped link may still be
 * finishing its last write when the same copy is run again and resumes from that part file: the
 * new one waits for the old one to let go first (two writers would corrupt it).
 */
const writing = new Map<string, Promise<void>>();

async function holdPart(part: string): Promise<() => void> {
  for (let prev = writing.get(part); prev; prev = writing.get(part)) await prev;
  let release!: () => void;
  writing.set(part, new Promise<void>((r) => (release = r)));
  return () => {
    writing.delete(part);
    release();
  };
}

/** The part file of one version of a file (size, mtime, mode); the Python client names it alike. */
function partName(path: string, m: FileEntry): string {
  const tag = m.size === null ? randomBytes(4).toString("hex") : createHash("sha256").update(`${m.size}:${m.mtime}:${m.mode}`).digest("hex").slice(0, 10);
  return join(dirname(path), `.${basename(path)}.${tag}.pysh-part`);
}

async function receiveFile(io: Duplex, path: string, m: FileEntry, opts: ReceiveOptions, sum: ReceiveSummary): Promise<void> {
  const existing = await statOrNull(path);
  if (existing?.isDirectory()) throw new PythondError("is_directory", `${path} is a directory`);
  const part = partName(path, m);
  const release = await holdPart(part);
  try {
    await receiveInto(io, path, part, m, opts, sum);
  } finally {
    release();
  }
}

async function receiveInto(io: Duplex, path: string, part: string, m: FileEntry, opts: ReceiveOptions, sum: ReceiveSummary): Promise<void> {
  const hasher = new Bun.CryptoHasher("sha256");
  let offset = 0;
  const old = opts.resume === false || m.size === null ? null : await statOrNull(part);
  let fh;
  try {
    fh = await open(part, old && old.size <= m.size! ? "r+" : "w", 0o600);
    if (old && old.size <= m.size!) {
      // what arrived before is hashed again: the sender's digest covers the whole file
      const buf = Buffer.allocUnsafe(CHUNK);
      for (;;) {
        const { bytesRead } = await fh.read(buf, 0, CHUNK, offset);
        if (bytesRead === 0) break;
        hasher.update(buf.subarray(0, bytesRead));
        offset += bytesRead;
      }
    }
  } catch (e) {
    await fh?.close();
    throw fsError(e, path, "writing");
  }
  let pos = offset;
  let ok = false;
  const writes = new Writes(fh, path);
  try {
    await send(io, { t: "at", offset });
    for (;;) {
      const d = await io.recv();
      if (d === null) {
        await writes.settle();
        ok = writes.failed === null; // keep the part file: the next transfer of this source resumes from it
        throw writes.failed ?? new PythondError("transfer_failed", `the transfer of ${path} was cut off after ${pos} bytes (run it again to resume)`);
      }
      if (typeof d === "string") {
        const end = control(d);
        if (end.t !== "end") throw new PythondError("transfer_failed", `unexpected '${end.t}' in a file`);
        await writes.drain();
        if (hasher.digest("hex") !== end.sha256) {
          throw new PythondError("checksum_mismatch", `checksum mismatch for ${path} (SHA-256 differs from the sender's; nothing was kept, run it again)`);
        }
        break;
      }
      // hashed here while the write runs on an I/O thread, and the next chunk is taken meanwhile
      const written = writes.add(d, pos);
      hasher.update(d);
      await written;
      pos += d.length;
      sum.bytes += d.length;
      opts.onProgress?.(path, pos, m.size);
    }
    await fh.close();
    fh = undefined;
    try {
      await chmod(part, m.mode & MODE_MASK);
      await rename(part, path);
    } catch (e) {
      throw fsError(e, path, "writing");
    }
    ok = true;
  } finally {
    await writes.settle(); // no write may land after the part file is closed or removed
    await fh?.close();
    if (!ok) await unlink(part).catch(() => {});
  }
  sum.files++;
  sum.resumed += offset;
  if (offset > 0) sum.resumedFiles.push(path);
  await send(io, { t: "ok", bytes: pos, resumed: offset });
}

async function writeAll(fh: FileHandle, d: Uint8Array, pos: number): Promise<void> {
  let w = 0;
  while (w < d.length) w += (await fh.write(d, w, d.length - w, pos + w)).bytesWritten;
}

/** Chunks handed to the writer and not yet written: the next one is received and hashed meanwhile. */
const WRITES_QUEUED = 2;

/**
 * The writes of one part file, one after the other in file order, without waiting for each: a
 * chunk is written on an I/O thread while the next is received and hashed (writing into memory
 * the system has not used yet costs this machine up to 2.5 ms per MiB, and waiting for each write
 * in turn made it the pace of the whole transfer, bench/RESULTS.md). In order, never two at once:
 * a receiver killed mid-transfer leaves a part file that is a prefix of the source (a later chunk
 * landing before an earlier one would leave a hole, and its resume would fail the checksum). The
 * first failure is kept and thrown by the next add/drain.
 */
class Writes {
  failed: PythondError | null = null;
  private queued = 0;
  private tail: Promise<void> = Promise.resolve();
  private room?: () => void;

  constructor(
    private readonly fh: FileHandle,
    private readonly path: string,
  ) {}

  /** Queues d for pos; resolves once fewer than WRITES_QUEUED are waiting or running. */
  async add(d: Uint8Array, pos: number): Promise<void> {
    if (this.failed) throw this.failed;
    this.queued++;
    this.tail = this.tail.then(async () => {
      try {
        if (!this.failed) await writeAll(this.fh, d, pos);
        received(d, true); // the write and the hash are done with it (hashed before this runs)
      } catch (e) {
        this.failed ??= fsError(e, this.path, "writing");
      }
      this.queued--;
      this.room?.();
    });
    while (this.queued >= WRITES_QUEUED && !this.failed) await new Promise<void>((r) => (this.room = r));
    if (this.failed) throw this.failed;
  }

  /** Waits for every write; throws the first failure. */
  async drain(): Promise<void> {
    await this.settle();
    if (this.failed) throw this.failed;
  }

  /** Waits for every write, failed or not. */
  settle(): Promise<void> {
    return this.tail;
  }
}

async function receiveToStream(io: Duplex, m: FileEntry, opts: ReceiveOptions, sum: ReceiveSummary): Promise<void> {
  const hasher = new Bun.CryptoHasher("sha256");
  let pos = 0;
  await send(io, { t: "at", offset: 0 });
  for (;;) {
    const d = await io.recv();
    const end = typeof d === "string" || d === null ? control(d) : null;
    if (end) {
      if (end.t !== "end") throw new PythondError("transfer_failed", `unexpected '${end.t}' in a file`);
      if (hasher.digest("hex") !== end.sha256) throw new PythondError("checksum_mismatch", "checksum mismatch (SHA-256 differs from the sender's)");
      break;
    }
    const bytes = d as Uint8Array;
    await opts.stdout?.(bytes);
    hasher.update(bytes);
    pos += bytes.length;
    received(bytes, false); // a stdout writer may still hold it
    sum.bytes += bytes.length;
    opts.onProgress?.("-", pos, m.size);
  }
  sum.files++;
  await send(io, { t: "ok", bytes: pos, resumed: 0 });
}
