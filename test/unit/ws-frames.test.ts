/**
 * Our own WebSocket framing (src/link/ws-socket.ts), both ends of a node link. The hub's side:
 * masked client frames of every size, fragmented messages and pings, cut into socket reads at
 * random points, come out as the same messages; unmasking is exact at every alignment, through
 * WebAssembly and through the JavaScript loop. The node's side: what it sends (masked, a fresh key
 * a frame) the hub's side reads back exactly, through partial socket writes, and what the hub
 * sends it reads back exactly.
 */
import { describe, expect, test } from "bun:test";
import type { Socket } from "bun";
import { RawWsChannel } from "../../src/fleet/hub/ws-server.ts";
import { maskInPlace, maskScratch, maskUsesWasm, unmaskInto, unmaskLoop } from "../../src/link/ws-mask.ts";
import { SocketWsChannel } from "../../src/link/ws-socket.ts";
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
  test("unmaskInto (and its JavaScript loop) matches the byte-by-byte definition at every source and destination alignment", () => {
    const r = rng(7);
    const mask = bytes(4, r);
    const src = bytes(5000, r);
    for (let s = 0; s < 8; s++) {
      for (let o = 0; o < 8; o++) {
        for (const n of [0, 1, 3, 4, 5, 31, 36, 37, 64, 1000, 4000]) {
          const out = new Uint8Array(o + n + 8);
          // the source seen through a view that starts at an odd place of its buffer, as socket reads do
          const view = new Uint8Array(src.buffer, 3, src.length - 3);
          for (const f of [unmaskInto, unmaskLoop]) {
            out.fill(0);
            f(view, s, out, o, n, mask);
            for (let i = 0; i < n; i++) {
              if (out[o + i] !== (view[s + i]! ^ mask[(o + i) & 3]!)) throw new Error(`${f.name} s=${s} o=${o} n=${n} i=${i}`);
            }
            expect(out[o + n]).toBe(0); // nothing written past the end
          }
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

describe("masking through WebAssembly", () => {
  test("is in use here, and agrees with the definition across its blocks, at every phase", () => {
    expect(maskUsesWasm).toBe(true);
    const r = rng(5);
    const mask = bytes(4, r);
    const src = bytes(700_000, r);
    for (const [s, o, n] of [[0, 0, 600_000], [3, 1, 600_000], [1, 2, 262_145], [2, 3, 1024], [5, 0, 1023]] as const) {
      const out = new Uint8Array(o + n + 4);
      unmaskInto(src, s, out, o, n, mask);
      for (let i = 0; i < n; i++) if (out[o + i] !== (src[s + i]! ^ mask[(o + i) & 3]!)) throw new Error(`s=${s} o=${o} n=${n} i=${i}`);
      expect(out[o + n]).toBe(0);
    }
    for (const n of [0, 3, 64, 1000, 300_001]) {
      const b = maskScratch(8 + n);
      b.set(src.subarray(0, n), 8);
      maskInPlace(b, 8, n, mask);
      for (let i = 0; i < n; i++) if (b[8 + i] !== (src[i]! ^ mask[i & 3]!)) throw new Error(`in place n=${n} i=${i}`);
    }
  });
});

/** A socket that takes at most `take()` bytes a write (0: none) and keeps what it took. */
function fakeSocket(take: () => number) {
  const wire: Uint8Array[] = [];
  const socket = {
    write: (c: Uint8Array) => {
      const n = Math.min(c.length, take());
      wire.push(c.slice(0, n));
      return n;
    },
    end() {},
  } as unknown as Socket<unknown>;
  return { socket, wire };
}

describe("node (client) WebSocket frames", () => {
  test("what a node sends, through partial writes, the hub reads back exactly; every frame masked with its own key", () => {
    for (const seed of [21, 22, 23]) {
      const r = rng(seed);
      const { socket, wire } = fakeSocket(() => (r(3) === 0 ? r(5000) : 1 << 30));
      const node = new SocketWsChannel(socket, 1 << 30, "client");
      const sent: Array<string | Uint8Array> = [];
      for (let k = 0; k < 40; k++) {
        const size = [0, 5, 125, 126, 4095, 4096, 65536, 300_000, 1_048_600][r(9)]!;
        const body = bytes(size, r);
        if (r(3) === 0) {
          const head = bytes(1 + r(40), r);
          node.sendParts(head, body);
          sent.push(Buffer.concat([head, body]));
        } else if (r(4) === 0) {
          const text = "ü ".repeat(1 + (size >> 6));
          node.send(text);
          sent.push(text);
        } else {
          node.send(body);
          sent.push(body);
        }
        // the socket drains now and then, as a real one does
        while (node.buffered() > 0 && r(2) === 0) node.drain();
      }
      while (node.buffered() > 0) node.drain();
      const stream = Buffer.concat(wire);
      const hub = new RawWsChannel({ write: (c: Uint8Array) => c.length, end() {} } as unknown as Socket<unknown>, 1 << 30);
      const got: Array<string | Uint8Array> = [];
      hub.onMessage((m) => got.push(m));
      for (let p = 0; p < stream.length; ) {
        const n = Math.min(stream.length - p, 1 + r(100_000));
        hub.feed(stream.subarray(p, p + n));
        p += n;
      }
      expect(hub.open).toBe(true);
      expect(got.length).toBe(sent.length);
      for (const [i, m] of sent.entries()) {
        if (typeof m === "string") expect(got[i]).toBe(m);
        else expect(Buffer.from(got[i] as Uint8Array).equals(Buffer.from(m))).toBe(true);
      }
      // every frame has the mask bit, and the keys are not all the same
      const keys = new Set<string>();
      for (let p = 0; p < stream.length; ) {
        expect(stream[p + 1]! & 0x80).toBe(0x80);
        const l7 = stream[p + 1]! & 0x7f;
        const hl = l7 < 126 ? 2 : l7 === 126 ? 4 : 10;
        const n = l7 < 126 ? l7 : l7 === 126 ? stream.readUInt16BE(p + 2) : Number(stream.readBigUInt64BE(p + 2));
        keys.add(stream.subarray(p + hl, p + hl + 4).toString("hex"));
        p += hl + 4 + n;
      }
      expect(keys.size).toBeGreaterThan(sent.length / 2);
    }
  });

  test("what the hub sends the node reads back exactly; a masked frame from a server closes with 1002", () => {
    const r = rng(31);
    const { socket, wire } = fakeSocket(() => 1 << 30);
    const hub = new RawWsChannel(socket, 1 << 30);
    const sent: Uint8Array[] = [];
    for (let k = 0; k < 20; k++) {
      const m = bytes([0, 7, 200, 70_000, 1_048_600][r(5)]!, r);
      if (r(2)) hub.send(m);
      else hub.sendParts(m.subarray(0, 3), m.subarray(3));
      sent.push(m);
    }
    const node = new SocketWsChannel({ write: (c: Uint8Array) => c.length, end() {} } as unknown as Socket<unknown>, 1 << 30, "client");
    const got: Uint8Array[] = [];
    node.onMessage((m) => got.push(m as Uint8Array));
    const stream = Buffer.concat(wire);
    for (let p = 0; p < stream.length; p += 9999) node.feed(stream.subarray(p, p + 9999));
    expect(got.map((m) => Buffer.from(m).toString("hex"))).toEqual(sent.map((m) => Buffer.from(m).toString("hex")));
    const closes: string[] = [];
    const bad = new SocketWsChannel({ write: (c: Uint8Array) => c.length, end() {} } as unknown as Socket<unknown>, 1000, "client");
    bad.onClose((why) => closes.push(why));
    bad.feed(clientFrame(0x2, new Uint8Array(3), true, new Uint8Array([1, 2, 3, 4])));
    expect(closes).toEqual(["1002 server frames must not be masked"]);
  });

  test("a hand-over between readers keeps what came in the same read (a welcome and the frames after it)", async () => {
    const hub = fakeSocket(() => 1 << 30);
    const server = new RawWsChannel(hub.socket, 1 << 30);
    server.send("challenge");
    server.send("welcome");
    server.send(new Uint8Array([1, 2, 3]));
    server.send(new Uint8Array([4]));
    const node = new SocketWsChannel(fakeSocket(() => 1 << 30).socket, 1 << 30, "client");
    const texts: string[] = [];
    node.onMessage((m) => {
      if (typeof m !== "string") throw new Error("a binary message reached the dial's reader");
      texts.push(m);
      if (texts.length === 2) node.keepForNext();
    });
    node.feed(Buffer.concat(hub.wire)); // all four in one socket read
    expect(texts).toEqual(["challenge", "welcome"]);
    const later: number[][] = [];
    node.onMessage((m) => later.push([...(m as Uint8Array)]));
    expect(later).toEqual([]); // a microtask later: the new reader finishes its set-up first
    await Promise.resolve();
    expect(later).toEqual([[1, 2, 3], [4]]);
  });

  test("close(reason) tells onClose the reason as given; a leading code is the one sent", () => {
    const { socket, wire } = fakeSocket(() => 1 << 30);
    const node = new SocketWsChannel(socket, 1000, "client");
    const closes: string[] = [];
    node.onClose((why) => closes.push(why));
    node.close("4001 gone away");
    expect(closes).toEqual(["4001 gone away"]);
    const frame = Buffer.concat(wire);
    expect(frame[0]).toBe(0x88);
    const mask = frame.subarray(2, 6);
    expect(((frame[6]! ^ mask[0]!) << 8) | (frame[7]! ^ mask[1]!)).toBe(4001);
    const other = new SocketWsChannel(fakeSocket(() => 1 << 30).socket, 1000, "client");
    other.onClose((why) => closes.push(why));
    other.close("no heartbeat from the hub for 3s");
    expect(closes[1]).toBe("no heartbeat from the hub for 3s");
  });
});
