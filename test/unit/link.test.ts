/**
 * The link layer over the in-memory pair: channel semantics, framing, the multiplexer (requests,
 * streams, credits, cancel, heartbeats, a lost link) and redialing. No process, no socket.
 */
import { describe, expect, test } from "bun:test";
import { memoryPair, type Message } from "../../src/link/channel.ts";
import { decodeFrame, encodeWorkerFrame, FrameSplitter } from "../../src/link/frame.ts";
import { Mux, type Header } from "../../src/link/mux.ts";
import { backoffDelay, Redialer } from "../../src/link/redial.ts";

/** Resolves when cond() holds, checked after every turn of the event loop (bounded). */
async function until(cond: () => boolean, what: string, turns = 10_000): Promise<void> {
  for (let i = 0; i < turns; i++) {
    if (cond()) return;
    await new Promise((r) => setImmediate(r));
  }
  throw new Error(`never happened: ${what}`);
}

/** As until, for conditions that wait on timers (heartbeats, backoff): checked every millisecond. */
async function untilTimer(cond: () => boolean, what: string, ms = 4000): Promise<void> {
  for (let i = 0; i < ms; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 1));
  }
  throw new Error(`never happened: ${what}`);
}

const enc = new TextEncoder();
const dec = new TextDecoder();

describe("memory pair", () => {
  test("delivers in order, later (not inside send), counting what is in flight as buffered", async () => {
    const [a, b] = memoryPair();
    const got: Message[] = [];
    b.onMessage((m) => got.push(m));
    let drains = 0;
    a.onDrain(() => drains++);
    a.send("one");
    a.send(enc.encode("two"));
    expect(got).toEqual([]);
    expect(a.buffered()).toBe(6);
    await until(() => got.length === 2, "delivery");
    expect(got[0]).toBe("one");
    expect(dec.decode(got[1] as Uint8Array)).toBe("two");
    expect(a.buffered()).toBe(0);
    expect(drains).toBeGreaterThan(0);
  });

  test("hold keeps messages buffered until release; the sender's buffer is copied", async () => {
    const [a, b] = memoryPair();
    const got: Message[] = [];
    b.onMessage((m) => got.push(m));
    a.hold();
    const buf = enc.encode("abc");
    a.send(buf);
    buf[0] = 0x7a; // reused by the sender after send
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    expect(got).toEqual([]);
    expect(a.buffered()).toBe(3);
    a.release();
    await until(() => got.length === 1, "delivery after release");
    expect(dec.decode(got[0] as Uint8Array)).toBe("abc");
  });

  test("close reaches both sides once, with the reason; sends after close are dropped", async () => {
    const [a, b] = memoryPair();
    const reasons: string[] = [];
    a.onClose((r) => reasons.push(`a:${r}`));
    b.onClose((r) => reasons.push(`b:${r}`));
    a.close("bye");
    a.close("again");
    await until(() => reasons.length === 2, "both closed");
    expect(reasons.sort()).toEqual(["a:bye", "b:bye"]);
    expect(a.open || b.open).toBe(false);
    a.send("x");
    expect(a.buffered()).toBe(0);
  });
});

describe("frames", () => {
  test("split at every byte boundary, several per chunk: the same frames come out", () => {
    const frames = [encodeWorkerFrame({ op: "a", rid: 1 }, "body one"), encodeWorkerFrame({ op: "b" }), encodeWorkerFrame({ op: "c", rid: 3 }, new Uint8Array(1000).fill(7))];
    const all = Buffer.concat(frames);
    for (const step of [1, 3, 8, 9, 100, all.length]) {
      const s = new FrameSplitter();
      const out: Uint8Array[] = [];
      for (let i = 0; i < all.length; i += step) out.push(...s.push(all.subarray(i, i + step)));
      expect(out.map((f) => decodeFrame(f).header.op)).toEqual(["a", "b", "c"]);
      expect(dec.decode(decodeFrame(out[0]!).body)).toBe("body one");
      expect(decodeFrame(out[2]!).body.length).toBe(1000);
    }
  });

  test("a broken frame is an error, not a hang", () => {
    const bad = Buffer.alloc(12);
    bad.writeUInt32BE(8, 0);
    bad.writeUInt32BE(100, 4); // header longer than the frame
    expect(() => new FrameSplitter().push(bad)).toThrow("bad frame");
    expect(() => decodeFrame(bad)).toThrow("bad frame");
    expect(() => decodeFrame(encodeWorkerFrame({ nop: 1 } as unknown as Header))).toThrow("bad frame header");
  });
});

/** Two multiplexers joined by a memory pair; `b` echoes requests and serves "count" streams. */
function pairOfMuxes() {
  const [ca, cb] = memoryPair();
  const a = new Mux(ca);
  const b = new Mux(cb);
  return { a, b, ca, cb };
}

describe("multiplexer", () => {
  test("many concurrent requests, answered out of order, each reach their own caller", async () => {
    const { a, b } = pairOfMuxes();
    const waiting: Array<Header> = [];
    b.onFrame = (h) => waiting.push(h);
    const replies = Array.from({ length: 100 }, (_, i) => a.request("echo", { i }));
    await until(() => waiting.length === 100, "all requests at b");
    for (const h of waiting.reverse()) b.send({ op: "reply", rid: h.rid, ok: true, data: Number(h.i) * 2 });
    const got = await Promise.all(replies);
    expect(got.map((r) => r.header.data)).toEqual(Array.from({ length: 100 }, (_, i) => i * 2));
  });

  test("sender-chosen ids are used as given", async () => {
    const { a, b } = pairOfMuxes();
    b.onFrame = (h) => b.send({ op: "reply", rid: h.rid, seen: h.rid });
    const r = await a.request("x", {}, undefined, 4242);
    expect(r.header.seen).toBe(4242);
  });

  test("streams: frames in order to their own handler until the end op; credits flow back", async () => {
    const { a, b } = pairOfMuxes();
    const served: Array<ReturnType<Mux["serve"]>> = [];
    let acked = 0;
    b.onFrame = (h) => {
      const out = b.serve(Number(h.rid), { acked: () => acked++ });
      served.push(out);
      for (let i = 0; i < 3; i++) out.send("out", { i }, `chunk ${i} of ${String(h.name)}`);
      out.end({ ok: true });
    };
    const seen = new Map<string, string[]>();
    const ends: string[] = [];
    const open = (name: string) =>
      a.open((rid) => encodeWorkerFrame({ op: "go", rid, name }), {
        frame: (h, body) => {
          if (h.op === "end") return void ends.push(name);
          seen.set(name, [...(seen.get(name) ?? []), dec.decode(body)]);
          a.ack(0, 0); // unrelated ids are ignored
        },
        lost: () => {
          throw new Error("not lost");
        },
      });
    const r1 = open("s1");
    const r2 = open("s2");
    expect(r1).not.toBe(r2);
    await until(() => ends.length === 2, "both streams ended");
    expect(seen.get("s1")).toEqual(["chunk 0 of s1", "chunk 1 of s1", "chunk 2 of s1"]);
    expect(seen.get("s2")).toEqual(["chunk 0 of s2", "chunk 1 of s2", "chunk 2 of s2"]);
    // credits: unacked counts what the requester has not acknowledged
    expect(served[0]!.unacked).toBe(3 * "chunk 0 of s1".length);
  });

  test("credits: the serving side sees unacked go down as the requester acks, and is told", async () => {
    const { a, b } = pairOfMuxes();
    let out!: ReturnType<Mux["serve"]>;
    let acks = 0;
    b.onFrame = (h) => {
      out = b.serve(Number(h.rid), { acked: () => acks++ });
      out.send("out", {}, new Uint8Array(1000));
    };
    const chunks: number[] = [];
    const rid = a.open((rid) => encodeWorkerFrame({ op: "go", rid }), { frame: (_h, body) => chunks.push(body.length), lost() {} });
    await until(() => chunks.length === 1, "the chunk");
    expect(out.unacked).toBe(1000);
    a.ack(rid, 600);
    await until(() => acks === 1, "the ack");
    expect(out.unacked).toBe(400);
    a.ack(rid, 400);
    await until(() => acks === 2, "the second ack");
    expect(out.unacked).toBe(0);
  });

  test("cancel reaches the serving side; input frames on a stream reach it too", async () => {
    const { a, b } = pairOfMuxes();
    const events: string[] = [];
    b.onFrame = (h) => {
      b.serve(Number(h.rid), { input: (ih, body) => events.push(`${ih.op}:${dec.decode(body)}`), cancel: () => events.push("cancel") });
    };
    const rid = a.open((rid) => encodeWorkerFrame({ op: "go", rid }), { frame() {}, lost() {} });
    a.send({ op: "in", rid }, "keys");
    a.cancel(rid);
    await until(() => events.length === 2, "input and cancel");
    expect(events).toEqual(["in:keys", "cancel"]);
  });

  test("a lost link: pending requests reject, open streams and served streams are told, once", async () => {
    const { a, b, ca } = pairOfMuxes();
    const lostServed: string[] = [];
    b.onFrame = (h) => {
      if (h.op === "go") b.serve(Number(h.rid), { lost: (r) => lostServed.push(r) });
    };
    const lost: string[] = [];
    a.open((rid) => encodeWorkerFrame({ op: "go", rid }), { frame() {}, lost: (r) => lost.push(r) });
    const pending = a.request("never");
    await until(() => lostServed.length === 0 && (b as unknown as { serving: Map<number, unknown> }).serving.size === 1, "served");
    const closedA: string[] = [];
    a.onClosed((r) => closedA.push(r));
    ca.close("cable cut");
    await expect(pending).rejects.toThrow("link closed: cable cut");
    expect(lost).toEqual(["cable cut"]);
    await until(() => lostServed.length === 1, "the serving side told");
    expect(lostServed).toEqual(["cable cut"]);
    expect(closedA).toEqual(["cable cut"]);
    // after the end: requests fail at once, streams are told at once
    await expect(a.request("late")).rejects.toThrow("link closed");
    const late: string[] = [];
    a.open(() => new Uint8Array(), { frame() {}, lost: (r) => late.push(r) });
    await until(() => late.length === 1, "late stream lost");
  });

  test("the gone option names the error pending requests get", async () => {
    const [ca, cb] = memoryPair();
    const a = new Mux(ca, { gone: (r) => new Error(`worker gone (${r})`) });
    new Mux(cb);
    const p = a.request("x");
    ca.close("eof");
    await expect(p).rejects.toThrow("worker gone (eof)");
  });

  test("a text message goes to onText, or ends the link with the text as reason", async () => {
    const [ca, cb] = memoryPair();
    const texts: string[] = [];
    new Mux(ca, { onText: (t) => texts.push(t) });
    cb.send("ERR auth failed");
    await until(() => texts.length === 1, "onText");
    const [cc, cd] = memoryPair();
    const c = new Mux(cc);
    const reasons: string[] = [];
    c.onClosed((r) => reasons.push(r));
    cd.send("ERR auth failed");
    await until(() => reasons.length === 1, "closed");
    expect(reasons).toEqual(["ERR auth failed"]);
  });

  test("a garbled frame ends the link (never a hang or a throw into the channel)", async () => {
    const [ca, cb] = memoryPair();
    const a = new Mux(ca);
    const reasons: string[] = [];
    a.onClosed((r) => reasons.push(r));
    cb.send(new Uint8Array([0, 0, 0, 1, 0]));
    await until(() => reasons.length === 1, "closed");
    expect(reasons[0]).toContain("bad frame");
  });

  test("heartbeats: pings are answered; a peer that stops answering closes the link", async () => {
    const { a, b, cb } = pairOfMuxes();
    const reasons: string[] = [];
    a.onClosed((r) => reasons.push(r));
    let pongs = 0;
    const orig = cb.send.bind(cb);
    cb.send = (m) => {
      if (typeof m !== "string" && decodeFrame(m).header.op === "pong") pongs++;
      orig(m);
    };
    a.heartbeat(5, 3);
    await untilTimer(() => pongs >= 5, "five pongs");
    expect(reasons).toEqual([]);
    cb.hold(); // b's side stops getting through (a half-open link)
    await untilTimer(() => reasons.length === 1, "the link given up");
    expect(reasons[0]).toContain("no answer to 3 heartbeats");
  });
});

describe("redial", () => {
  test("full jitter: attempt n waits in [0, min(cap, base * 2^(n-1)))", () => {
    expect(backoffDelay(0, 500, 30_000, () => 0.99)).toBe(0);
    expect(backoffDelay(1, 500, 30_000, () => 0.5)).toBe(250);
    expect(backoffDelay(3, 500, 30_000, () => 0.999)).toBeLessThan(2000);
    expect(backoffDelay(20, 500, 30_000, () => 0.999)).toBeLessThan(30_000);
    expect(backoffDelay(20, 500, 30_000, () => 0)).toBe(0);
  });

  test("dials until it works, redials when the link goes, get() dials at once when down", async () => {
    let fail = 2;
    let dials = 0;
    const far: Array<ReturnType<typeof memoryPair>[1]> = [];
    const ups: number[] = [];
    const downs: string[] = [];
    const r = new Redialer(
      async () => {
        dials++;
        if (fail-- > 0) throw new Error("refused");
        const [near, other] = memoryPair();
        far.push(other);
        new Mux(other);
        return new Mux(near);
      },
      { baseMs: 1, capMs: 2, onUp: () => ups.push(dials), onDown: (e) => downs.push(e.message) },
    );
    r.start();
    await untilTimer(() => r.current !== undefined, "the link up");
    expect(dials).toBe(3);
    expect(downs).toEqual(["refused", "refused"]);
    far[0]!.close("remote restarted");
    await untilTimer(() => ups.length === 2, "redialed");
    expect(downs).toContain("remote restarted");
    const link = await r.get();
    expect(link).toBe(r.current!);
    r.close();
    expect(link.closed).toBe(true);
  });

  test("get() when down: one dial now, its error thrown, the redial goes on", async () => {
    let ok = false;
    const r = new Redialer(
      async () => {
        if (!ok) throw new Error("refused by 127.0.0.1:1");
        return new Mux(memoryPair()[0]);
      },
      { baseMs: 1, capMs: 1 },
    );
    await expect(r.get()).rejects.toThrow("refused by");
    ok = true;
    expect((await r.get()).closed).toBe(false);
    r.close();
  });

  test("retryAfter holds the next attempt back", async () => {
    let dials = 0;
    const r = new Redialer(async () => {
      dials++;
      throw new Error("busy");
    }, { baseMs: 1, capMs: 1 });
    r.retryAfter(60_000);
    r.start();
    for (let i = 0; i < 50; i++) await new Promise((res) => setImmediate(res));
    expect(dials).toBe(0);
    r.close();
  });
});
