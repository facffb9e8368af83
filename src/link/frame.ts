/**
 * The frame of every multiplexed link (src/link/mux.ts) — the daemon <-> worker Unix stream
 * (mirrored by src/worker/py/_pythond/wire.py), and the same bytes as one binary WebSocket message
 * on links between daemons: u32 BE length of the rest, u32 BE header length, header (UTF-8 JSON
 * object with a string `op`), body (raw bytes, never JSON-escaped). Bump WORKER_PROTOCOL in
 * src/protocol/worker.ts (and its Python mirror) when this or the worker's messages change.
 *
 *   encodeWorkerFrame(header, body?) / encodeWorkerJson(headerJson, body?) -> bytes
 *   FrameSplitter.push(chunk) -> whole frames (stream channels);  decodeFrame(frame) -> {header, body}
 *   WorkerFrameReader.push(chunk) -> [{header, body}] (the two above in one, for tests and tools)
 */
import type { WorkerHeader } from "../protocol/worker.ts";

export type { WorkerHeader };

export function encodeWorkerFrame(header: WorkerHeader, body?: Uint8Array | string): Uint8Array {
  return encodeWorkerJson(JSON.stringify(header), body);
}

/**
 * A frame from header JSON text (the daemon formats its `run` header itself: it sends one per
 * cell). Written into one Buffer with its own methods: a DataView over a fresh array, or
 * TextEncoder views, cost more than the rest of the frame here.
 */
export function encodeWorkerJson(headerJson: string, body?: Uint8Array | string): Uint8Array {
  const hlen = Buffer.byteLength(headerJson);
  const blen = body === undefined ? 0 : typeof body === "string" ? Buffer.byteLength(body) : body.length;
  const out = Buffer.allocUnsafeSlow(8 + hlen + blen);
  out.writeUInt32BE(4 + hlen + blen, 0);
  out.writeUInt32BE(hlen, 4);
  out.write(headerJson, 8, hlen, "utf8");
  if (typeof body === "string") out.write(body, 8 + hlen, blen, "utf8");
  else if (body !== undefined) out.set(body, 8 + hlen);
  return out;
}

/** Longer than anything a worker sends (output comes in 256 KiB chunks): a broken stream. */
const MAX_FRAME = 1 << 30;

/** Incremental decoder: push bytes, get whole frames; bodies are copies. */
export class WorkerFrameReader {
  private buf = Buffer.alloc(0);
  private len = 0;

  push(chunk: Uint8Array): Array<{ header: WorkerHeader; body: Uint8Array }> {
    if (this.len + chunk.length > this.buf.length) {
      const grown = Buffer.allocUnsafeSlow(Math.max(this.buf.length * 2, this.len + chunk.length, 65536));
      this.buf.copy(grown, 0, 0, this.len);
      this.buf = grown;
    }
    const buf = this.buf;
    buf.set(chunk, this.len);
    this.len += chunk.length;
    const frames: Array<{ header: WorkerHeader; body: Uint8Array }> = [];
    let off = 0;
    while (this.len - off >= 8) {
      const total = buf.readUInt32BE(off);
      const hlen = buf.readUInt32BE(off + 4);
      if (total > MAX_FRAME || hlen > total - 4) throw new Error("bad frame from worker");
      if (this.len - off < 4 + total) break;
      const header = JSON.parse(buf.toString("utf8", off + 8, off + 8 + hlen)) as WorkerHeader;
      // A copy: the reader's buffer is reused (Buffer#slice would be a view of it).
      const body = new Uint8Array(total - 4 - hlen);
      buf.copy(body, 0, off + 8 + hlen, off + 4 + total);
      frames.push({ header, body });
      off += 4 + total;
    }
    if (off > 0) {
      this.buf.copyWithin(0, off, this.len);
      this.len -= off;
    }
    return frames;
  }
}

/**
 * Splits a byte stream into whole frames, each returned as one fresh Uint8Array (length prefix
 * included): the message unit of stream channels (src/link/unix.ts). One copy per frame, as
 * WorkerFrameReader makes of each body; decodeFrame then reads it without copying again.
 */
export class FrameSplitter {
  private buf = Buffer.alloc(0);
  private len = 0;

  push(chunk: Uint8Array): Uint8Array[] {
    if (this.len === 0 && chunk.length >= 8) {
      // The common case: the chunk is exactly one frame, nothing held back (a copy all the same:
      // the transport may reuse its buffer).
      const total = readU32(chunk, 0);
      if (total > MAX_FRAME || readU32(chunk, 4) > total - 4) throw new Error("bad frame from peer");
      if (chunk.length === 4 + total) return [chunk.slice()];
    }
    if (this.len + chunk.length > this.buf.length) {
      const grown = Buffer.allocUnsafeSlow(Math.max(this.buf.length * 2, this.len + chunk.length, 65536));
      this.buf.copy(grown, 0, 0, this.len);
      this.buf = grown;
    }
    const buf = this.buf;
    buf.set(chunk, this.len);
    this.len += chunk.length;
    const frames: Uint8Array[] = [];
    let off = 0;
    while (this.len - off >= 8) {
      const total = buf.readUInt32BE(off);
      const hlen = buf.readUInt32BE(off + 4);
      if (total > MAX_FRAME || hlen > total - 4) throw new Error("bad frame from peer");
      if (this.len - off < 4 + total) break;
      const frame = new Uint8Array(4 + total);
      buf.copy(frame, 0, off, off + 4 + total);
      frames.push(frame);
      off += 4 + total;
    }
    if (off > 0) {
      this.buf.copyWithin(0, off, this.len);
      this.len -= off;
    }
    return frames;
  }
}

function readU32(b: Uint8Array, off: number): number {
  return ((b[off]! << 24) >>> 0) + (b[off + 1]! << 16) + (b[off + 2]! << 8) + b[off + 3]!;
}

/** One whole frame (as FrameSplitter or a binary WebSocket message gives it): header and body (a view). */
export function decodeFrame(frame: Uint8Array): { header: WorkerHeader; body: Uint8Array } {
  if (frame.length < 8) throw new Error("bad frame from peer");
  const total = readU32(frame, 0);
  const hlen = readU32(frame, 4);
  if (total !== frame.length - 4 || hlen > total - 4) throw new Error("bad frame from peer");
  const b = Buffer.from(frame.buffer, frame.byteOffset, frame.length);
  const header = JSON.parse(b.toString("utf8", 8, 8 + hlen)) as WorkerHeader;
  if (header === null || typeof header !== "object" || typeof header.op !== "string") throw new Error("bad frame header from peer");
  return { header, body: frame.subarray(8 + hlen) };
}
