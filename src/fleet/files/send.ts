/**
 * The sending side of a transfer (the client for `put`, the node for `get`): checks the source
 * before saying anything (no such file, a directory without -r, no permission: the receiver is told
 * the same error), then walks it and streams each file from the offset the receiver asks for,
 * hashing the whole file (the skipped prefix included, read again) so the receiver can check it.
 * One chunk is read per send and `send` waits for the transport's credit, so memory stays bounded.
 */
import { lstat, open, readdir, readlink, stat } from "node:fs/promises";
import { basename, join } from "node:path";
import type { Stats } from "node:fs";
import { PythondError } from "../../protocol/errors.ts";
import type { Duplex } from "../duplex.ts";
import { CHUNK, fail, framing, fsError, recvControl, send, sendFramed, type Kind } from "./wire.ts";

export interface SendOptions {
  recursive?: boolean;
  chunk?: number;
  /** For `-`: the bytes to send (stdin). */
  stdin?: AsyncIterable<Uint8Array>;
  /** For `-`: the name it gets inside a directory the receiver was given (default "stdin"). */
  name?: string;
  /** Called after each chunk: bytes of the current file done, its size (null: unknown). */
  onProgress?(path: string, done: number, size: number | null): void;
}

/** A chunk read into `buf` at `from`; `lead` is where its framed message starts. */
interface Chunk {
  buf: Uint8Array;
  from: number;
  lead: number;
  n: number;
}

export interface SendSummary {
  /** Where the receiver put it. */
  target: string;
  files: number;
  bytes: number;
  /** Bytes not sent again because the receiver already had them (resume). */
  resumed: number;
}

export async function sendTree(io: Duplex, src: string, opts: SendOptions = {}): Promise<SendSummary> {
  let st: Stats | null = null;
  if (src !== "-") {
    try {
      st = await stat(src); // a symlink given by name is followed, as cp does
    } catch (e) {
      return fail(io, fsError(e, src, "reading"));
    }
    if (st.isDirectory() && !opts.recursive) return fail(io, new PythondError("is_directory", `${src} is a directory (use -r)`));
    if (!st.isDirectory() && !st.isFile()) return fail(io, new PythondError("usage", `${src} is not a regular file or directory`));
  }
  const kind: Kind = st?.isDirectory() ? "dir" : "file";
  const sum: SendSummary = { target: "", files: 0, bytes: 0, resumed: 0 };
  try {
    await send(io, { t: "root", kind, name: src === "-" ? (opts.name ?? "stdin") : basename(src), recursive: !!opts.recursive });
    const root = await recvControl(io);
    if (root.t !== "root" || !("path" in root)) throw new PythondError("transfer_failed", "unexpected reply to the transfer");
    sum.target = root.path;
    if (src === "-") await sendStream(io, opts, sum);
    else if (kind === "file") await sendFile(io, src, "", st!, opts, sum);
    else await sendDir(io, src, "", st!, opts, sum);
    await send(io, { t: "done" });
    await recvControl(io);
  } catch (e) {
    // our own error (a file unreadable mid-tree) goes to the receiver; if the receiver's `err`
    // arrived instead, telling it back is harmless (it closed already)
    return fail(io, e);
  }
  io.close();
  return sum;
}

async function sendDir(io: Duplex, abs: string, rel: string, st: Stats, opts: SendOptions, sum: SendSummary): Promise<void> {
  await send(io, { t: "entry", kind: "dir", path: rel, mode: st.mode & 0o7777 });
  await recvControl(io);
  let names: string[];
  try {
    names = (await readdir(abs)).sort();
  } catch (e) {
    throw fsError(e, abs, "reading");
  }
  for (const name of names) {
    const a = join(abs, name);
    const r = rel ? `${rel}/${name}` : name;
    let s: Stats;
    try {
      s = await lstat(a);
    } catch (e) {
      throw fsError(e, a, "reading");
    }
    if (s.isDirectory()) await sendDir(io, a, r, s, opts, sum);
    else if (s.isFile()) await sendFile(io, a, r, s, opts, sum);
    else if (s.isSymbolicLink()) {
      await send(io, { t: "entry", kind: "symlink", path: r, target: await readlink(a) });
      await recvControl(io);
    }
    // sockets, fifos and devices are not files to copy (as rsync without --devices --specials)
  }
}

async function sendFile(io: Duplex, abs: string, rel: string, st: Stats, opts: SendOptions, sum: SendSummary): Promise<void> {
  let fh;
  try {
    fh = await open(abs, "r");
  } catch (e) {
    throw fsError(e, abs, "reading");
  }
  try {
    const size = (await fh.stat()).size;
    await send(io, { t: "entry", kind: "file", path: rel, size, mode: st.mode & 0o7777, mtime: Math.floor(st.mtimeMs) });
    const at = await recvControl(io);
    const offset = at.t === "at" ? at.offset : 0;
    const hasher = new Bun.CryptoHasher("sha256");
    const chunk = opts.chunk ?? CHUNK;
    let pos = 0;
    // the prefix the receiver kept is hashed from our copy: a mismatch shows at the end
    const scratch = Buffer.allocUnsafe(chunk);
    while (pos < offset) {
      const { bytesRead } = await fh.read(scratch, 0, Math.min(chunk, offset - pos), pos);
      if (bytesRead === 0) break;
      hasher.update(scratch.subarray(0, bytesRead));
      pos += bytesRead;
    }
    sum.resumed += pos;
    // Framed: two buffers for the whole file, the transport's framing in front of the data (it
    // takes the bytes before sendFramed returns). Else a fresh buffer each: the transport may hold it.
    const room = io.room ?? 0;
    const framed = io.sendFramed ? [framing(room, chunk), framing(room, chunk)] : null;
    const read = (k: number, at: number): Promise<Chunk> => {
      const f = framed?.[k & 1];
      const buf = f ? f.block : Buffer.allocUnsafe(chunk);
      const from = f ? f.at : 0;
      return fh.read(buf, from, chunk, at).then(
        ({ bytesRead }) => ({ buf, from, lead: f?.lead ?? 0, n: bytesRead }),
        (e) => Promise.reject(fsError(e, abs, "reading")),
      );
    };
    // the next chunk is read while this one is hashed and sent
    let next = read(0, pos);
    try {
      for (let k = 1; ; k++) {
        const c = await next;
        if (c.n === 0) break;
        next = read(k, pos + c.n);
        const data = c.buf.subarray(c.from, c.from + c.n);
        hasher.update(data);
        if (framed) await sendFramed(io, c.buf.subarray(c.lead, c.from + c.n));
        else await send(io, data);
        pos += c.n;
        sum.bytes += c.n;
        opts.onProgress?.(rel || abs, pos, size);
      }
    } finally {
      await next.catch(() => {}); // settled before the file is closed
    }
    await send(io, { t: "end", sha256: hasher.digest("hex"), size: pos });
    await recvControl(io);
    sum.files++;
  } finally {
    await fh.close();
  }
}

async function sendStream(io: Duplex, opts: SendOptions, sum: SendSummary): Promise<void> {
  await send(io, { t: "entry", kind: "file", path: "", size: null, mode: 0o644, mtime: Date.now() });
  await recvControl(io);
  const hasher = new Bun.CryptoHasher("sha256");
  let pos = 0;
  for await (const data of opts.stdin ?? []) {
    hasher.update(data);
    await send(io, data);
    pos += data.length;
    sum.bytes += data.length;
    opts.onProgress?.("-", pos, null);
  }
  await send(io, { t: "end", sha256: hasher.digest("hex"), size: pos });
  await recvControl(io);
  sum.files++;
}
