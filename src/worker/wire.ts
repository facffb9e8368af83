/**
 * Daemon <-> worker framing (mirrored by py/_pythond/wire.py): u32 BE length of the rest,
 * u32 BE header length, header (UTF-8 JSON), body (raw bytes). Bump WORKER_PROTOCOL in
 * src/protocol/version.ts when this or the messages change.
 */
export interface WorkerHeader {
  op: string;
  rid?: number;
  [key: string]: unknown;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

export function encodeWorkerFrame(header: WorkerHeader, body?: Uint8Array | string): Uint8Array {
  const h = enc.encode(JSON.stringify(header));
  const b = body === undefined ? new Uint8Array(0) : typeof body === "string" ? enc.encode(body) : body;
  const out = new Uint8Array(8 + h.length + b.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, 4 + h.length + b.length);
  view.setUint32(4, h.length);
  out.set(h, 8);
  out.set(b, 8 + h.length);
  return out;
}

/** A frame at least this long is gathered in a buffer of its own: its body is a view of it. */
const BIG_FRAME = 64 << 10;
/** Longer than anything a worker sends (output comes in 256 KiB chunks): a broken stream. */
const MAX_FRAME = 1 << 30;

/**
 * Incremental decoder: push bytes, get whole frames. Small frames gather in one shared buffer
 * and their bodies are copies. A big frame (bulk output) is gathered in a buffer of its own,
 * sized from its length prefix, and its body is a view of that buffer: each byte is copied once
 * here, instead of into the shared buffer, out of it, and along it.
 */
export class WorkerFrameReader {
  private buf = new Uint8Array(65536);
  private len = 0;
  /** The big frame being gathered (everything after its length prefix), and how much has come. */
  private big?: Uint8Array;
  private bigLen = 0;

  push(chunk: Uint8Array): Array<{ header: WorkerHeader; body: Uint8Array }> {
    const frames: Array<{ header: WorkerHeader; body: Uint8Array }> = [];
    let at = 0;
    for (;;) {
      if (this.big) {
        const n = Math.min(this.big.length - this.bigLen, chunk.length - at);
        this.big.set(chunk.subarray(at, at + n), this.bigLen);
        this.bigLen += n;
        at += n;
        if (this.bigLen < this.big.length) return frames;
        frames.push(decodeFrame(this.big, 0, this.big.length, false));
        this.big = undefined;
      }
      if (at === chunk.length) return frames;
      // Gather into the shared buffer until a length prefix shows a big frame, or frames end.
      const rest = chunk.subarray(at);
      if (this.len + rest.length > this.buf.length) {
        const grown = new Uint8Array(Math.max(this.buf.length * 2, this.len + rest.length));
        grown.set(this.buf.subarray(0, this.len));
        this.buf = grown;
      }
      this.buf.set(rest, this.len);
      this.len += rest.length;
      at = chunk.length;
      let off = 0;
      const view = new DataView(this.buf.buffer, this.buf.byteOffset);
      while (this.len - off >= 4) {
        const total = view.getUint32(off);
        if (total > MAX_FRAME) throw new Error("bad frame from worker");
        if (total >= BIG_FRAME) {
          // Move what has come of it into its own buffer; the rest of the chunk goes there too.
          this.big = new Uint8Array(total);
          this.bigLen = Math.min(total, this.len - off - 4);
          this.big.set(this.buf.subarray(off + 4, off + 4 + this.bigLen));
          const used = off + 4 + this.bigLen;
          if (used < this.len) {
            // The big frame was complete in the buffer: decode it, keep going after it.
            frames.push(decodeFrame(this.big, 0, total, false));
            this.big = undefined;
          }
          off = used;
          continue;
        }
        if (this.len - off < 4 + total) break;
        frames.push(decodeFrame(this.buf, off + 4, total, true));
        off += 4 + total;
      }
      if (off > 0) {
        this.buf.copyWithin(0, off, this.len);
        this.len -= off;
      }
      if (!this.big) return frames;
    }
  }
}

/** One frame from bytes[start, start + total): header length, header, body (copied if `copy`). */
function decodeFrame(bytes: Uint8Array, start: number, total: number, copy: boolean): { header: WorkerHeader; body: Uint8Array } {
  if (total < 4) throw new Error("bad frame from worker");
  const hlen = new DataView(bytes.buffer, bytes.byteOffset).getUint32(start);
  if (hlen > total - 4) throw new Error("bad frame from worker");
  const header = JSON.parse(dec.decode(bytes.subarray(start + 4, start + 4 + hlen))) as WorkerHeader;
  const body = copy ? bytes.slice(start + 4 + hlen, start + total) : bytes.subarray(start + 4 + hlen, start + total);
  return { header, body };
}
