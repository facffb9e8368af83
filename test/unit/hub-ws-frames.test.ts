/**
 * The hub's own WebSocket framing (src/fleet/hub/ws-server.ts) on the receiving side: masked
 * client frames of every size, fragmented messages and pings, cut into socket reads at random
 * points, come out as the same messages; the one-pass unmasking is exact at every alignment.
 */
import { describe, expect, test } from "bun:test";
import type { Socket } from "bun";
import { RawWsChannel } from "../../src/fleet/hub/ws-server.ts";
import { unmaskInto } from "../../src/fleet/hub/ws-mask.ts";
import { POOL_FROM, POOLED, pooledCount, recycle, takeArray } from "../../src/link/recycle.ts";

/** A deterministic generator: failures replay. */
function rng(seed: number) {
  let x = seed >>> 0 || 1;
  return (n: number) => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x % n;
  };
}

function bytes(n: number, r: (n: number) => number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = r(256);
  return b;
}

/** One client frame (masked), as a browser or Bun's client sends it. */
function clientFrame(opcode: number, payload: Uint8Array, fin: boolean, mask: Uint8Array): Uint8Array {
  const n = payload.length;
  const len = n < 126 ? [n] : n < 65536 ? [126, n >> 8, n & 0xff] : [127, 0, 0, 0, 0, (n >>> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];
  const head = [(fin ? 0x80 : 0) | opcode, 0x80 | len[0]!, ...len.slice(1), ...mask];
  const f = new Uint8Array(head.length + n);
  f.set(head);
  for (let i = 0; i < n; i++) f[head.length + i] = payload[i]! ^ mask[i & 3]!;
  return f;
}

describe("hub WebSocket frames", () => {
  test("unmaskInto matches the byte-by-byte definition at every source and destination alignment", () => {
    const r = rng(7);
    const mask = bytes(4, r);
    const src = bytes(5000, r);
    for (let s = 0; s < 8; s++) {
      for (let o = 0; o < 8; o++) {
        for (const n of [0, 1, 3, 4, 5, 31, 36, 37, 64, 1000, 4000]) {
          const out = new Uint8Array(o + n + 8);
          // the source seen through a view that starts at an odd place of its buffer, as socket reads do
          const view = new Uint8Array(src.buffer, 3, src.length - 3);
          unmaskInto(view, s, out, o, n, mask);
          for (let i = 0; i < n; i++) {
            if (out[o + i] !== (view[s + i]! ^ mask[(o + i) & 3]!)) throw new Error(`s=${s} o=${o} n=${n} i=${i}`);
          }
          expect(out[o + n]).toBe(0); // nothing written past the end
        }
      }
    }
  });

  test("messages of every size, fragments and pings, cut into reads anywhere, arrive whole and exact", () => {
    for (const seed of [1, 2, 3, 4, 5, 6]) {
      const r = rng(seed);
      const sent: Array<string | Uint8Array> = [];
      const wire: Uint8Array[] = [];
      const pongs: number[] = [];
      for (let k = 0; k < 30; k++) {
        const kind = r(10);
        const size = [0, 5, 125, 126, 300, 65535, 65536, 70_000, 300_000, 1_100_000][r(10)]!;
        const payload = bytes(size, r);
        if (kind === 0) {
          wire.push(clientFrame(0x9, payload.subarray(0, 50), true, bytes(4, r))); // a ping in between
          pongs.push(50);
        } else if (kind === 1 && size > 10) {
          // a fragmented binary message in three pieces
          const a = r(size), b = a + r(size - a);
          wire.push(clientFrame(0x2, payload.subarray(0, a), false, bytes(4, r)));
          wire.push(clientFrame(0x0, payload.subarray(a, b), false, bytes(4, r)));
          wire.push(clientFrame(0x0, payload.subarray(b), true, bytes(4, r)));
          sent.push(payload);
        } else if (kind === 2) {
          const text = "é✓ text ".repeat(1 + (size >> 4));
          wire.push(clientFrame(0x1, new TextEncoder().encode(text), true, bytes(4, r)));
          sent.push(text);
        } else {
          wire.push(clientFrame(0x2, payload, true, bytes(4, r)));
          sent.push(payload);
        }
      }
      const stream = new Uint8Array(wire.reduce((n, w) => n + w.length, 0));
      let at = 0;
      for (const w of wire) {
        stream.set(w, at);
        at += w.length;
      }
      const written: Uint8Array[] = [];
      const socket = { write: (c: Uint8Array) => (written.push(c.slice()), c.length), end() {} } as unknown as Socket<unknown>;
      const ch = new RawWsChannel(socket, 1 << 30);
      const got: Array<string | Uint8Array> = [];
      ch.onMessage((m) => got.push(m));
      // socket reads of random sizes, at a random offset of one Buffer that every read reuses (as
      // a socket may: nothing may keep a view of it)
      const reused = Buffer.alloc(200_010);
      for (let p = 0; p < stream.length; ) {
        const n = Math.min(stream.length - p, 1 + r(r(2) ? 200_000 : 40));
        const pad = r(7);
        reused.fill(0xee);
        reused.set(stream.subarray(p, p + n), pad);
        ch.feed(reused.subarray(pad, pad + n));
        p += n;
      }
      expect(got.length).toBe(sent.length);
      for (const [i, m] of sent.entries()) {
        if (typeof m === "string") expect(got[i]).toBe(m);
        else expect(Buffer.from(got[i] as Uint8Array).equals(Buffer.from(m))).toBe(true);
      }
      expect(written.length).toBe(pongs.length); // one pong per ping
      expect(ch.open).toBe(true);
    }
  });

  test("an unmasked client frame or one over the limit closes the link with 1002 / 1009", () => {
    const closes: string[] = [];
    const socket = { write: (c: Uint8Array) => c.length, end() {} } as unknown as Socket<unknown>;
    const a = new RawWsChannel(socket, 1000);
    a.onClose((why) => closes.push(why));
    a.feed(new Uint8Array([0x82, 0x03, 1, 2, 3]));
    const b = new RawWsChannel(socket, 1000);
    b.onClose((why) => closes.push(why));
    b.feed(clientFrame(0x2, new Uint8Array(2000), true, new Uint8Array([1, 2, 3, 4])).subarray(0, 100));
    expect(closes).toEqual(["1002 client frames must be masked", "1009 message too large"]);
  });

  test("a file chunk's array is used again once recycled, exact every time; others are not taken back", () => {
    const r = rng(11);
    const socket = { write: (c: Uint8Array) => c.length, end() {} } as unknown as Socket<unknown>;
    const ch = new RawWsChannel(socket, 1 << 30);
    const got: Uint8Array[] = [];
    ch.onMessage((m) => got.push(m as Uint8Array));
    const before = pooledCount();
    const buffers = new Set<ArrayBufferLike>();
    for (let k = 0; k < 5; k++) {
      const payload = bytes((1 << 20) + 27, r); // a file chunk and its framing
      const wire = clientFrame(0x2, payload, true, bytes(4, r));
      for (let p = 0; p < wire.length; p += 65536) ch.feed(wire.subarray(p, p + 65536));
      const m = got.pop()!;
      expect(Buffer.from(m).equals(Buffer.from(payload))).toBe(true);
      buffers.add(m.buffer);
      expect(recycle(m)).toBe(true); // its consumer is done with it
      expect(recycle(m)).toBe(false); // never twice
    }
    expect(buffers.size).toBe(1); // the one array, every time
    expect(pooledCount()).toBe(before + 1);
    // small messages, arrays from elsewhere, and a full pool: not taken back
    expect(takeArray(POOL_FROM - 1).buffer.byteLength).toBe(POOL_FROM - 1);
    expect(recycle(takeArray(1000))).toBe(false);
    expect(recycle(new Uint8Array(POOLED))).toBe(false);
    const many = Array.from({ length: 12 }, () => takeArray(POOLED));
    expect(pooledCount()).toBeLessThanOrEqual(6);
    many.map(recycle);
    expect(pooledCount()).toBe(6); // no more are kept
  });
});
