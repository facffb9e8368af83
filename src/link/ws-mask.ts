/**
 * Masking and unmasking WebSocket payloads (RFC 6455 5.3): every byte a node sends is masked (the
 * client's duty) and every byte the hub receives from a node unmasked, so bulk transfers run
 * through here.
 *
 *   unmaskInto(src, s, out, o, n, mask)   out[o..o+n) = src[s..s+n) ^ the mask (phase from payload
 *                                         offset o): the hub's receiving path
 *   maskScratch(size) / maskInPlace(...)  a client's outgoing frame, built in WebAssembly memory and
 *                                         masked there in place (ws-socket.ts)
 *
 * The XOR runs in a WebAssembly function with 128-bit SIMD (ws-mask.wat, 265 bytes, compiled in
 * here): 1 GiB copied into WebAssembly memory, masked and copied out in 0.08-0.09 s at any source
 * alignment, with or without the daemons' memcpy setting (src/daemon/memcpy-tune.ts), against
 * 0.27-0.42 s for the JavaScript word loop below; measured on this machine (AMD EPYC). The loop
 * stays as the fallback where WebAssembly SIMD is missing (or PYTHOND_WS_MASK_WASM=0).
 *
 * Why the JavaScript loop reads words and shifts rather than copying and XORing in place: glibc's
 * memcpy on AMD is many times slower for unequally aligned pieces under ~512 KiB (its `rep movsb`
 * path), and a payload lands in the socket's chunks at any offset.
 */

const LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** ws-mask.wat, assembled (`npx wabt` then `wat2wasm ws-mask.wat`; base64). */
const WASM = "AGFzbQEAAAABBwFgA39/fwADAgEABQMBAAEHEAIGbWVtb3J5AgADeG9yAAAK2gEB1wECAX8BeyAC/REhBCAAIAFBQHFqIQMCQANAIAAgA08NASAAIAD9AAQAIAT9Uf0LBAAgACAA/QAEECAE/VH9CwQQIAAgAP0ABCAgBP1R/QsEICAAIAD9AAQwIAT9Uf0LBDAgAEHAAGohAAwACwsgAUE/cSEBIAAgAUF8cWohAwJAA0AgACADTw0BIAAgACgCACACczYCACAAQQRqIQAMAAsLIAFBA3EhAQJAA0AgAUUNASAAIAAtAAAgAnM6AAAgAkEIdiECIABBAWohACABQQFrIQEMAAsLCw==";

interface Xor {
  memory: WebAssembly.Memory;
  /** xor(ptr, len, word): memory[ptr..ptr+len) ^= the little-endian word repeated from ptr */
  xor(p: number, n: number, m: number): void;
}

function loadXor(): Xor | null {
  // wasm memory is little-endian: the mask word must be too
  if (!LE || process.env.PYTHOND_WS_MASK_WASM === "0") return null;
  try {
    const inst = new WebAssembly.Instance(new WebAssembly.Module(Buffer.from(WASM, "base64")));
    return inst.exports as unknown as Xor;
  } catch {
    return null; // no WebAssembly SIMD here: the JavaScript loop does it
  }
}

const wasm = loadXor();
/** Bytes unmasked per pass through WebAssembly memory. */
const BLOCK = 256 << 10;
/** Below this the JavaScript loop is as quick as the calls and copies. */
const WASM_FROM = 1024;

/** The WebAssembly memory as bytes, grown to at least `size` (a view made now: growing detaches older ones). */
function wasmBytes(size: number): Uint8Array {
  const mem = wasm!.memory;
  if (mem.buffer.byteLength < size) mem.grow(Math.ceil((size - mem.buffer.byteLength) / 65536));
  return new Uint8Array(mem.buffer);
}

/** The mask word for bytes starting at payload offset o (its byte k masks payload byte o + k). */
function phased(m32: number, o: number): number {
  const r = (o & 3) * 8;
  if (r === 0) return m32;
  return LE ? (m32 >>> r) | (m32 << (32 - r)) : (m32 << r) | (m32 >>> (32 - r));
}

/** The 4-byte mask as one word in this machine's byte order (so `word ^ m32` masks 4 bytes). */
export function maskWord(mask: Uint8Array): number {
  return (LE ? mask[0]! | (mask[1]! << 8) | (mask[2]! << 16) | (mask[3]! << 24) : (mask[0]! << 24) | (mask[1]! << 16) | (mask[2]! << 8) | mask[3]!) | 0;
}

/**
 * out[o + i] = src[s + i] ^ mask[(o + i) & 3] for i < n, where `o` counts from the start of the
 * payload (out.byteOffset must be a multiple of 4: a fresh array).
 */
export function unmaskInto(src: Uint8Array, s: number, out: Uint8Array, o: number, n: number, mask: Uint8Array): void {
  if (wasm && n >= WASM_FROM) {
    const m32 = maskWord(mask);
    for (let done = 0; done < n; done += BLOCK) {
      const len = Math.min(BLOCK, n - done);
      const w = wasmBytes(len);
      w.set(src.subarray(s + done, s + done + len));
      wasm.xor(0, len, phased(m32, o + done));
      out.set(w.subarray(0, len), o + done);
    }
    return;
  }
  unmaskLoop(src, s, out, o, n, mask);
}

/** unmaskInto in JavaScript, a word at a time (exported for tests). */
export function unmaskLoop(src: Uint8Array, s: number, out: Uint8Array, o: number, n: number, mask: Uint8Array): void {
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

/**
 * `size` bytes to build a masked frame in: WebAssembly memory when there is some (then
 * maskInPlace masks it there), else a reused array. Valid until the next call.
 */
let fallbackScratch = new Uint8Array(0);
export function maskScratch(size: number): Uint8Array {
  if (wasm) return wasmBytes(size).subarray(0, size);
  if (fallbackScratch.length < size) fallbackScratch = new Uint8Array(Math.max(size, 64 << 10));
  return fallbackScratch.subarray(0, size);
}

/** Masks b[at..at+n) in place, the mask's phase counted from `at` (b from maskScratch). */
export function maskInPlace(b: Uint8Array, at: number, n: number, mask: Uint8Array): void {
  if (wasm && b.buffer === wasm.memory.buffer) return wasm.xor(b.byteOffset + at, n, maskWord(mask));
  const view = new Uint8Array(b.buffer, b.byteOffset + at, n);
  unmaskLoop(view, 0, view, 0, n, mask);
}

/** Whether the WebAssembly path is in use (tests). */
export const maskUsesWasm = wasm !== null;
