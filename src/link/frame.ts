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
