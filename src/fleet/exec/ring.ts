/**
 * The kept output of one stream of a job (stdout or stderr): the last `keep` bytes, addressed by
 * offset (the count of bytes the stream produced before them), so a reader that lost its link can
 * ask again from the offset it last saw and learn how much fell out of the window meanwhile.
 *
 * Chunks are kept as the pipe delivered them (no copying into one big buffer); each carries the
 * sequence number of its arrival across both streams, so a reader can merge stdout and stderr back
 * in the order they were read.
 */
import { garbage } from "../../link/garbage.ts";

export interface RingChunk {
  seq: number;
  offset: number;
  data: Uint8Array;
}

export class OutputRing {
  private chunks: RingChunk[] = [];
  /** Index in `chunks` of the first live chunk (dropped ones are spliced off in batches). */
  private head = 0;
  /** Offset of the first byte still kept. */
  start = 0;
  /** Offset after the last byte produced (the stream's total size so far). */
  end = 0;

  constructor(readonly keep: number) {}

  push(seq: number, data: Uint8Array): void {
    if (data.length === 0) return;
    this.chunks.push({ seq, offset: this.end, data });
    this.end += data.length;
    garbage(data.length); // pipe reads are fresh buffers (src/link/garbage.ts)
    // Drop whole chunks from the front while the rest still covers `keep` bytes.
    while (this.head < this.chunks.length - 1) {
      const c = this.chunks[this.head]!;
      if (this.end - (c.offset + c.data.length) < this.keep) break;
      this.head++;
      this.start = c.offset + c.data.length;
    }
    // ...and cut into the first one so exactly `keep` bytes stay addressable (its buffer is freed
    // when it goes as a whole).
    if (this.end - this.start > this.keep) {
      const c = this.chunks[this.head]!;
      const cut = this.end - this.keep - c.offset;
      this.chunks[this.head] = { seq: c.seq, offset: c.offset + cut, data: c.data.subarray(cut) };
      this.start = c.offset + cut;
    }
    if (this.head > 64 && this.head * 2 > this.chunks.length) {
      this.chunks = this.chunks.slice(this.head);
      this.head = 0;
    }
  }

  /**
   * The chunk holding `offset` (or the first kept one if `offset` was dropped), sliced to start at
   * `offset` when it is inside; undefined when nothing at or after `offset` exists yet.
   */
  at(offset: number): RingChunk | undefined {
    if (offset >= this.end) return undefined;
    const from = Math.max(offset, this.start);
    let lo = this.head;
    let hi = this.chunks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.chunks[mid]!.offset <= from) lo = mid;
      else hi = mid - 1;
    }
    const c = this.chunks[lo]!;
    if (c.offset === from) return c;
    return { seq: c.seq, offset: from, data: c.data.subarray(from - c.offset) };
  }

  /** Everything kept from `offset` on, as one buffer (for `job` replies). */
  read(offset: number, max = Infinity): { offset: number; data: Uint8Array } {
    const from = Math.max(offset, this.start);
    const parts: Uint8Array[] = [];
    let size = 0;
    let at = from;
    while (at < this.end && size < max) {
      const c = this.at(at)!;
      const take = c.data.subarray(0, Math.min(c.data.length, max - size));
      parts.push(take);
      size += take.length;
      at += take.length;
    }
    return { offset: from, data: Buffer.concat(parts) };
  }
}
