/**
 * Unmasking a client's WebSocket payload (RFC 6455 5.3) in one pass: read from the bytes the
 * socket gave, XOR, write into the message's own array. Bulk data through the hub (a `pysh get`)
 * is all masked frames from the node, so this loop is on the path of every byte.
 *
 * Why not copy then XOR in place: this machine's memcpy is ~15x slower when the source and the
 * destination are not equally aligned (glibc's `rep movsb` path, pieces under ~512 KiB; measured
 * 0.5 s per GiB against 0.03), and a payload lands in the socket's chunks at any offset. Reading
 * whole words from the source and shifting them into place costs the same at every alignment.
 */

const LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** The 4-byte mask as one word in this machine's byte order (so `word ^ m32` masks 4 bytes). */
export function maskWord(mask: Uint8Array): number {
  return (LE ? mask[0]! | (mask[1]! << 8) | (mask[2]! << 16) | (mask[3]! << 24) : (mask[0]! << 24) | (mask[1]! << 16) | (mask[2]! << 8) | mask[3]!) | 0;
}

/**
 * out[o + i] = src[s + i] ^ mask[(o + i) & 3] for i < n, where `o` counts from the start of the
 * payload (out.byteOffset must be a multiple of 4: a fresh array).
 */
export function unmaskInto(src: Uint8Array, s: number, out: Uint8Array, o: number, n: number, mask: Uint8Array): void {
  while (n > 0 && (o & 3) !== 0) {
    out[o] = src[s]! ^ mask[o & 3]!;
    o++;
    s++;
    n--;
  }
  const words = n >>> 2;
  if (words > 8) {
    const m32 = maskWord(mask);
    const abs = src.byteOffset + s;
    const r = abs & 3;
    const dst = new Int32Array(out.buffer, out.byteOffset + o, words);
    if (r === 0) {
      const w = new Int32Array(src.buffer, abs, words);
      for (let k = 0; k < words; k++) dst[k] = w[k]! ^ m32;
    } else {
      // Words of the source at aligned addresses, each output word made of two of them; the view
      // ends before the source's last word so it never reads past the array's buffer.
      const w = new Int32Array(src.buffer, abs - r, words);
      const lo = r * 8;
      const hi = 32 - lo;
      const last = words - 1;
      if (LE) for (let k = 0; k < last; k++) dst[k] = ((w[k]! >>> lo) | (w[k + 1]! << hi)) ^ m32;
      else for (let k = 0; k < last; k++) dst[k] = ((w[k]! << lo) | (w[k + 1]! >>> hi)) ^ m32;
      const done = last * 4;
      for (let i = done; i < words * 4; i++) out[o + i] = src[s + i]! ^ mask[(o + i) & 3]!;
    }
    o += words * 4;
    s += words * 4;
    n -= words * 4;
  }
  for (let i = 0; i < n; i++) out[o + i] = src[s + i]! ^ mask[(o + i) & 3]!;
}
