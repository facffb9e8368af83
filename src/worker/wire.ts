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

/** Longer than anything a worker sends (output comes in 256 KiB chunks): a broken stream. */
const MAX_FRAME = 1 << 30;

/** Incremental decoder: push bytes, get whole frames; bodies are copies. */
export class WorkerFrameReader {
  private buf = new Uint8Array(0);
  private len = 0;

  push(chunk: Uint8Array): Array<{ header: WorkerHeader; body: Uint8Array }> {
    if (this.len + chunk.length > this.buf.length) {
      const grown = new Uint8Array(Math.max(this.buf.length * 2, this.len + chunk.length, 65536));
      grown.set(this.buf.subarray(0, this.len));
      this.buf = grown;
    }
    this.buf.set(chunk, this.len);
    this.len += chunk.length;
    const frames: Array<{ header: WorkerHeader; body: Uint8Array }> = [];
    let off = 0;
    const view = new DataView(this.buf.buffer, this.buf.byteOffset);
    while (this.len - off >= 8) {
      const total = view.getUint32(off);
      const hlen = view.getUint32(off + 4);
      if (total > MAX_FRAME || hlen > total - 4) throw new Error("bad frame from worker");
      if (this.len - off < 4 + total) break;
      const header = JSON.parse(dec.decode(this.buf.subarray(off + 8, off + 8 + hlen))) as WorkerHeader;
      const body = this.buf.slice(off + 8 + hlen, off + 4 + total);
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
