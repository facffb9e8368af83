/**
 * Arrays for large incoming messages (a file chunk: 1 MiB and its framing), used again once their
 * final consumer is done with them, instead of a fresh one per message.
 *
 * Why: a fresh 1 MiB array per message is fresh memory per message: page faults and the kernel
 * zeroing every page (on this machine's VM, first-touched memory costs several times more), then
 * garbage the collector has to find. Measured on the hub receiving a 1 GiB `pysh get`: page faults
 * and collections were ~0.4 CPU s per GiB of its main thread (bench/RESULTS.md).
 *
 * Only arrays this module handed out come back (a WeakSet says which), at most KEEP of them are
 * kept, and `recycle` is called only where nothing else can still refer to the bytes (the file
 * receiver, after the write and the hash: src/fleet/files/receive.ts). An array nobody recycles is
 * collected as any other.
 */

/** The capacity of a pooled array: a file chunk (src/fleet/files/wire.ts CHUNK) with room for framing. */
export const POOLED = (1 << 20) + 4096;
/** Messages smaller than this get an array of their own size (a pooled one would waste its capacity). */
export const POOL_FROM = POOLED >> 1;
/** A transfer's window (4 chunks, src/fleet/io/tunnel.ts) and its writes in flight (2, receive.ts). */
const KEEP = 6;

const free: ArrayBuffer[] = [];
const ours = new WeakSet<ArrayBuffer>();

/** An array of `n` bytes, contents undefined: a pooled one when n is in [POOL_FROM, POOLED]. */
export function takeArray(n: number): Uint8Array {
  if (n < POOL_FROM || n > POOLED) return new Uint8Array(Buffer.allocUnsafeSlow(n).buffer, 0, n);
  let ab = free.pop();
  if (!ab) {
    ab = Buffer.allocUnsafeSlow(POOLED).buffer as ArrayBuffer;
    ours.add(ab);
  }
  return new Uint8Array(ab, 0, n);
}

/**
 * Gives the array under `view` back, when it came from takeArray; the caller guarantees nothing
 * refers to it any more. Returns whether it was taken back (false: it is garbage as usual).
 */
export function recycle(view: Uint8Array): boolean {
  const ab = view.buffer as ArrayBuffer;
  if (!ours.has(ab) || free.length >= KEEP || free.includes(ab)) return false;
  free.push(ab);
  return true;
}

/** Arrays waiting to be used again (tests). */
export function pooledCount(): number {
  return free.length;
}
