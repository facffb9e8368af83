/**
 * The hub <-> node link over the in-memory pair, with real daemon cores on both sides (fake
 * workers behind the node): requests through `node/session` names, the caller `hub` held to the
 * table, a link lost mid-stream and resumed on a new one without running anything twice, credits,
 * and the retry-after schedule of a busy hub. No process, no socket.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { memoryPair, type MemoryChannel } from "../../src/link/channel.ts";
import { Mux } from "../../src/link/mux.ts";
import { JournaledStream, RidLedger, ResumeCursor } from "../../src/link/resume.ts";
import { NodePort } from "../../src/fleet/hub/port.ts";
import { NodeTarget, type AttachStream } from "../../src/fleet/hub/target.ts";
import { Admission } from "../../src/fleet/hub/admit.ts";
import { HubLink } from "../../src/fleet/hub/link.ts";
import type { FleetHub } from "../../src/fleet/hub/hub.ts";
import type { NodeEntry } from "../../src/fleet/hub/registry.ts";
import type { RawWsChannel } from "../../src/fleet/hub/ws-server.ts";
import { hubDispatch, NodeServer } from "../../src/fleet/node/serve.ts";
import type { ClientConn } from "../../src/daemon/conn.ts";
import { SUBPROTOCOL_CODES } from "../../src/protocol/version.ts";
import { Core } from "../fixtures/core.ts";
import type { FakeWorker } from "../fixtures/fake-worker.ts";

async function until(cond: () => boolean, what: string, turns = 20_000): Promise<void> {
  for (let i = 0; i < turns; i++) {
    if (cond()) return;
    await new Promise((r) => setImmediate(r));
  }
  throw new Error(`never happened: ${what}`);
}

/** A hub core whose `n1/…` names go to a node core over a memory-pair link. */
class Fleet {
  readonly hub = new Core();
  readonly node = new Core();
  readonly port = new NodePort("n1");
  readonly server: NodeServer;
  worker!: FakeWorker;
  hubEnd?: MemoryChannel;
  private connIds = 1000;

  constructor() {
    this.server = new NodeServer(hubDispatch(this.node.ctx, "hub:test", () => this.connIds++));
    const memo = new WeakMap<ClientConn, AttachStream>();
    this.hub.ctx.sources.push({
      target: (via, session, name) => (via === "n1" && name.includes("/") ? new NodeTarget(name, session, this.port, memo) : undefined),
    });
  }

  async start(): Promise<this> {
    this.worker = await this.node.session("w");
    this.link("hub-1");
    return this;
  }

  /** A new link (the node dialed again): both ends get a fresh multiplexer. */
  link(instance: string): void {
    const [a, b] = memoryPair();
    this.hubEnd = a;
    const hubMux = new Mux(a, { ids: this.port.ids });
    hubMux.onClosed(() => this.port.down(hubMux));
    const nodeMux = new Mux(b);
    this.server.bind(nodeMux, instance);
    this.port.up(hubMux);
  }

  close(): void {
    this.server.close();
    this.hub.close();
    this.node.close();
  }
}

let fleet: Fleet | undefined;
afterEach(() => {
  fleet?.close();
  fleet = undefined;
});

describe("node/session through the link", () => {
  test("run streams CELL, output and OK; one-reply commands come back verbatim", async () => {
    fleet = await new Fleet().start();
    const c = fleet.hub.client();
    c.send("run n1/w\nprint:hello");
    const got = await c.until((t) => !t.startsWith("CELL "));
    expect(got[0]).toMatch(/^CELL c\d+$/);
    expect(new TextDecoder().decode(got[1] as Uint8Array)).toBe("hello");
    expect(got.at(-1)).toBe("OK");
    expect(JSON.parse(await c.ask("status n1/w"))).toMatchObject({ name: "w", pid: 4242 });
    expect(await c.ask("run n1/w\nfail:boom")).toStartWith("CELL ");
    expect(await c.nextText()).toBe("ERR execution_failed: execution failed\nboom");
    expect(await c.ask("status n1/nope")).toStartWith("ERR no_session: no session 'nope'");
    // every answered request is let go on both sides: no stream, journal or port entry stays
    const ledger = (fleet.server as unknown as { ledger: { streams(): unknown[] } }).ledger;
    await until(() => ledger.streams().length === 0 && fleet!.port.streams.size === 0, "every stream to be let go");
  });

  test("the node answers the hub as caller hub: control commands are refused by its table", async () => {
    fleet = await new Fleet().start();
    const texts: string[] = [];
    await new Promise<void>((resolve) =>
      fleet!.port.start("stop", SUBPROTOCOL_CODES, {
        text: (t) => texts.push(t),
        binary: () => true,
        drained: (cb) => cb(),
        end: resolve,
        fail: () => resolve(),
      }),
    );
    expect(texts).toEqual(["ERR not_local: stop is not accepted from a hub caller"]);
    expect(fleet.node.stopped).toEqual([]);
    expect(fleet.node.log()).toMatch(/event=result conn_id=\d+ peer=hub:test cmd=stop .*status=error/);
  });

  test("a link lost mid-stream: the cell runs on, the stream resumes on the next link, nothing runs twice", async () => {
    fleet = await new Fleet().start();
    const c = fleet.hub.client();
    const size = 3_000_000;
    c.send(`run n1/w\nbig:${size}`);
    let bytes = 0;
    const first = await c.next(); // CELL
    expect(String(first)).toStartWith("CELL ");
    while (bytes === 0) {
      const m = await c.next();
      if (typeof m !== "string") bytes += m.length;
    }
    fleet.hubEnd!.close("cut"); // the link goes (both multiplexers see it)
    await until(() => fleet!.port.mux === undefined, "the hub to see the link go");
    fleet.link("hub-1"); // the same hub instance: the node keeps its journals
    let final = "";
    while (!final) {
      const m = await c.next();
      if (typeof m === "string") final = m;
      else bytes += m.length;
    }
    expect(final).toBe("OK");
    expect(bytes).toBe(size);
    expect(fleet.worker.seen.filter((h) => h.op === "run").length).toBe(1);
  });

  test("a slow hub client holds the cell on the node: neither side's memory grows; reading resumes it", async () => {
    fleet = await new Fleet().start();
    const c = fleet.hub.client();
    c.daemonEnd.hold(); // the hub's client stops reading
    const size = 8_000_000;
    c.send(`run n1/w\nbig:${size}`);
    const ledger = (fleet.server as unknown as { ledger: { streams(): Array<{ journal: { buffered(): number } }> } }).ledger;
    await until(() => ledger.streams().length === 1 && ledger.streams()[0]!.journal.buffered() > 0, "output to reach the node's journal");
    for (let i = 0; i < 2000; i++) await new Promise((r) => setImmediate(r)); // let it run as far as it can
    const journal = ledger.streams()[0]!.journal.buffered();
    expect(journal).toBeLessThanOrEqual(2 << 20); // one window (1 MiB) and a chunk in flight
    expect(c.daemonEnd.buffered()).toBeLessThanOrEqual(3 << 20); // the hub stopped crediting the node
    c.daemonEnd.release();
    let bytes = 0;
    let final = "";
    while (!final) {
      const m = await c.next();
      if (typeof m === "string") final = m.startsWith("CELL ") ? "" : m;
      else bytes += m.length;
    }
    expect([final, bytes]).toEqual(["OK", size]);
  });

  test("a new hub instance drops the old journals (their cells run on; nobody waits for them)", async () => {
    fleet = await new Fleet().start();
    const c = fleet.hub.client();
    c.send("run n1/w\nhang");
    expect(String(await c.next())).toStartWith("CELL ");
    fleet.hubEnd!.close("hub restarted");
    await until(() => fleet!.port.mux === undefined, "the link to go");
    fleet.link("hub-2");
    await until(() => fleet!.node.log().includes("cmd=run") && fleet!.worker.seen.filter((h) => h.op === "run").length === 1, "the run to have reached the worker once");
  });
});

describe("what a node may ask of the hub", () => {
  test("nothing: any request from a node is refused, and logged with its id", async () => {
    const logged: string[] = [];
    const hub = { logNode: (_e: NodeEntry, _s: string, detail: string) => logged.push(detail), beats: () => ({ add() {}, remove() {} }), linkDown() {} };
    const entry = { id: "n1" } as NodeEntry;
    const [a, b] = memoryPair();
    const link = new HubLink(hub as unknown as FleetHub, entry, new NodePort("n1"), a as unknown as RawWsChannel, 1);
    const node = new Mux(b);
    const r = await node.request("run", {}, "stop");
    expect(r.header).toMatchObject({ ok: false, code: "not_allowed" });
    expect(logged).toEqual(["refused op from node: run"]);
    // a late answer (a reply, an end) is dropped without an answer: two ends never echo
    const got: string[] = [];
    node.onFrame = (h) => got.push(h.op);
    node.send({ op: "reply", rid: 99, ok: true });
    node.send({ op: "end", rid: 98 });
    expect((await node.request("run", {}, "again")).header.ok).toBe(false);
    expect(got).toEqual([]);
    link.close(1000, "done");
  });
});

describe("resume pieces", () => {
  test("a journal holds what was sent until seen, replays the rest, and gives credit below the window", () => {
    const j = new JournaledStream(1);
    let credits = 0;
    j.onCredit = () => credits++;
    for (let i = 0; i < 4; i++) j.emit("b", new Uint8Array(512 << 10));
    expect(j.buffered()).toBe(2 << 20);
    expect(j.seen(2, 1 << 20)).toBe(false);
    expect(j.buffered()).toBe(1 << 20);
    expect(credits).toBe(0); // still at the window
    j.emit("end", undefined, true);
    expect(j.seen(3, 1 << 20)).toBe(false);
    expect(credits).toBe(1);
    expect(j.seen(5, 1 << 20)).toBe(true); // the end was seen: over
  });

  test("the cursor drops replayed frames; the ledger remembers what ran", () => {
    const c = new ResumeCursor();
    expect([1, 2, 2, 1, 3].map((seq) => c.accept({ seq }))).toEqual([true, true, false, false, true]);
    const l = new RidLedger<string>(4, 3600_000);
    l.start(7, "seven");
    expect(l.get(7)).toBe("seven");
    l.finish(7);
    expect(l.get(7)).toBeUndefined();
    expect(l.wasDone(7)).toBe(true);
    expect(l.reset()).toEqual([]);
    expect(l.wasDone(7)).toBe(false);
  });

  test("a busy hub spreads the nodes it turns away over its admission rate, never the same moment", () => {
    const a = new Admission();
    expect(a.retryAfter(0)).toBeNull();
    a.pending = 1_000_000;
    const waits = Array.from({ length: 2000 }, () => a.retryAfter(0)!);
    expect(Math.max(...waits)).toBeGreaterThan(1900); // 2,000 nodes at 1,000/s: over two seconds
    const buckets = new Set(waits.map((w) => Math.floor(w / 100)));
    expect(buckets.size).toBeGreaterThan(15);
  });
});
