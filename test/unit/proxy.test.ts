/**
 * A proxy over the in-memory pair: daemon A's proxy `srv` dials a memory channel whose other end
 * daemon B serves as a proxy link (src/proxy/serve.ts). One link carries every command, many at
 * once; replies come back verbatim; credits flow back as A's client reads; a lost link is said
 * and redialed; attach works through it. No process, no socket.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { memoryPair, type MemoryChannel } from "../../src/link/channel.ts";
import { router } from "../../src/daemon/dispatch.ts";
import { serveLink } from "../../src/proxy/serve.ts";
import { SUBPROTOCOL, SUBPROTOCOL_CODES, SUBPROTOCOL_LEGACY } from "../../src/protocol/version.ts";
import { Core, type Msg } from "../fixtures/core.ts";
import type { FakeWorker } from "../fixtures/fake-worker.ts";

let a: Core;
let b: Core;
afterEach(() => {
  a?.close();
  b?.close();
});

const dec = new TextDecoder();
const texts = (ms: Msg[]) => ms.map((m) => (typeof m === "string" ? m : `<${dec.decode(m)}>`));

async function turns(n = 50): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}

/** A with proxy `srv` to B (sessions srv and work there); the links dialed so far. */
async function pair(): Promise<{ links: MemoryChannel[]; workers: { srv: FakeWorker; work: FakeWorker } }> {
  a = new Core();
  b = new Core();
  const workers = { srv: await b.session("srv"), work: await b.session("work") };
  const links: MemoryChannel[] = [];
  let nextConn = 100;
  const dial = async () => {
    const [near, far] = memoryPair();
    links.push(near);
    serveLink(far, { peer: "127.0.0.1:5555", caller: "remote", nextConnId: () => nextConn++, log: b.ctx.log, router: router(b.ctx), maxFrame: 8 << 20 });
    return near;
  };
  await a.ctx.proxies.connect(a.ctx.registry, "srv", "127.0.0.1:7399", "tok", true, dial);
  return { links, workers };
}

describe("proxy over the multiplexer", () => {
  test("run, errors, one-reply commands, through the proxy name, a/b, and the original's two-name form", async () => {
    const { workers } = await pair();
    const c = a.client(SUBPROTOCOL);
    c.send("run srv\nprint:hello");
    expect(texts(await c.until((t) => t === "OK"))).toEqual(["CELL c1", "<hello>", "OK"]);
    c.send("run srv/work\nprint:there");
    expect(texts(await c.until((t) => t === "OK"))).toEqual(["CELL c1", "<there>", "OK"]);
    expect(workers.work.seen.filter((h) => h.op === "run").length).toBe(1);
    expect(await c.ask("fire srv work\nprint:x")).toBe('{"cell_id":"f2"}');
    expect(await c.ask("vars srv/work")).toBe('["x","y"]');
    c.send("run srv work\nfail:boom");
    expect((await c.until((t) => t.startsWith("ERR"))).at(-1)).toBe("ERR execution failed\nboom");
    expect(await c.ask("status srv/nope")).toBe("ERR no session 'nope' -- create it first with: pysh new nope");
    // the codes and the original's single reply survive the trip
    expect(await a.client(SUBPROTOCOL_CODES).ask("status srv/nope")).toStartWith("ERR no_session: no session 'nope'");
    expect(await a.client(SUBPROTOCOL_LEGACY).ask("run srv/work\nprint:41\n")).toBe("41");
    // a reply larger than a piece (the original's one reply of a big cell) comes back whole
    const big = "ü".repeat(1_500_000);
    expect(await a.client(SUBPROTOCOL_LEGACY).ask(`run srv/work\nprint:${big}`)).toBe(big);
    // B saw an authenticated remote peer
    expect(b.log()).toMatch(/event=command conn_id=\d+ peer=127\.0\.0\.1:5555 cmd=run session=work/);
  });

  test("many commands at once share one link", async () => {
    const { links } = await pair();
    const clients = Array.from({ length: 40 }, () => a.client(SUBPROTOCOL));
    clients.forEach((c, i) => c.send(`run srv/work\nprint:n${i}`));
    const outs = await Promise.all(clients.map((c) => c.until((t) => t === "OK")));
    outs.forEach((o, i) => expect(texts(o).slice(1)).toEqual([`<n${i}>`, "OK"]));
    expect(links.length).toBe(1);
  });

  test("credits: A's client stops reading, B's cell stops at the window; reading resumes it", async () => {
    const { workers } = await pair();
    const c = a.client(SUBPROTOCOL);
    c.daemonEnd.hold();
    c.send("run srv/work\nbig:" + 16 * 1024 * 1024);
    await turns(300);
    const acked = () => workers.work.seen.filter((h) => h.op === "ack").reduce((n, h) => n + Number(h.n), 0);
    const stuck = acked();
    expect(stuck).toBeLessThan(8 * 1024 * 1024);
    await turns(300);
    expect(acked()).toBe(stuck);
    c.daemonEnd.release();
    const got = await c.until((t) => t === "OK");
    expect(got.reduce((n, m) => n + (typeof m === "string" ? 0 : m.length), 0)).toBe(16 * 1024 * 1024);
  });

  test("large frames travel in pieces; one over the remote's limit fails alone, the link lives on", async () => {
    const { links, workers } = await pair();
    const c = a.client(SUBPROTOCOL);
    const big = "é".repeat(2_500_000); // 5 MB of two-byte characters, pieces split inside them
    c.send(`run srv/work\nprint:${big}`);
    const got = await c.until((t) => t === "OK");
    expect(got.filter((m) => typeof m !== "string").map((m) => dec.decode(m as Uint8Array)).join("")).toBe(big);
    const other = a.client(SUBPROTOCOL);
    other.send("run srv/work\nhang");
    expect(await other.next()).toStartWith("CELL ");
    c.send(`run srv/work\nprint:${"x".repeat(9 << 20)}`);
    expect(await c.nextText()).toStartWith("ERR remote 'srv' (127.0.0.1:7399 tls): connection lost during run: frame too large");
    expect(await c.ask("vars srv/work")).toBe('["x","y"]');
    expect(links.length).toBe(1); // the other client's cell still runs on the same link
    expect(workers.work.seen.filter((h) => h.op === "run").length).toBe(2);
  });

  test("a lost link: the command in flight says so (with the cell id); the next one redials", async () => {
    const { links } = await pair();
    const c = a.client(SUBPROTOCOL);
    c.send("run srv/work\nhang");
    expect(await c.next()).toBe("CELL c1");
    links[0]!.close("cable cut");
    expect(await c.nextText()).toBe(
      "ERR remote 'srv' (127.0.0.1:7399 tls): connection lost during run: cable cut " +
        "(cell c1 may still be running there; check with: pysh poll srv/work c1)",
    );
    expect(await c.ask("vars srv/work")).toBe('["x","y"]');
    expect(links.length).toBe(2);
  });

  test("attach through the proxy: replay, keys, resize, detach", async () => {
    const { workers } = await pair();
    const c = a.client(SUBPROTOCOL);
    c.send("attach srv/work 24 80");
    expect(await c.next()).toBe("OK attached");
    expect(dec.decode((await c.next()) as Uint8Array)).toBe(">>> ");
    c.sendBinary(new TextEncoder().encode("1+1\r"));
    await turns();
    expect(workers.work.typed).toBe("1+1\r");
    expect(await c.ask("resize srv/work 30 100")).toBe("OK resized 30x100");
    expect(await c.ask("detach")).toBe("OK detached");
    await turns();
    expect(workers.work.attachedIds).toEqual([]);
  });

  test("a rejected token fails the probe with the listener's words; nothing is created", async () => {
    a = new Core();
    const dial = async () => {
      const [near, far] = memoryPair();
      far.send("ERR auth failed");
      queueMicrotask(() => far.close("policy"));
      return near;
    };
    await expect(a.ctx.proxies.connect(a.ctx.registry, "srv", "127.0.0.1:7399", "bad", true, dial)).rejects.toThrow(
      "remote probe failed: auth failed",
    );
    expect(a.ctx.proxies.list()).toEqual([]);
  });
});
