/**
 * The daemon's core over the in-memory pair (test/fixtures/core.ts): dispatch (one path, callers,
 * targets, codes), conn (order, overlapping runs), run (streaming, the original's one reply,
 * credits), attach. No process, no socket: sessions are fake workers.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { COMMANDS, type CommandName } from "../../src/protocol/commands.ts";
import { SUBPROTOCOL, SUBPROTOCOL_CODES, SUBPROTOCOL_LEGACY } from "../../src/protocol/version.ts";
import { parse, resolveTarget } from "../../src/daemon/dispatch.ts";
import type { Target, TargetSource } from "../../src/daemon/target.ts";
import { Core } from "../fixtures/core.ts";

let core: Core;
afterEach(() => core?.close());

const dec = new TextDecoder();
const texts = (ms: Array<string | Uint8Array>) => ms.map((m) => (typeof m === "string" ? m : `<${dec.decode(m)}>`));

async function turns(n = 50): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}

describe("dispatch", () => {
  test("one parse per frame: the fast path's request is the general path's", async () => {
    core = new Core();
    await core.session("w");
    const plain = parse(core.ctx, "run w\nx = 1")!;
    expect(plain.req).toEqual({ cmd: "run", args: ["w"], opts: {}, body: "x = 1" });
    expect(plain.overlap).toBe("w");
    expect(parse(core.ctx, "run w --timeout 5\nx")!.overlap).toBeUndefined();
    expect(parse(core.ctx, "run other\nx")!.overlap).toBeUndefined(); // not a session here
    expect(parse(core.ctx, "run w\r\n")!.req!.body).toBe(""); // the CRLF rule, in parseFrame only
    expect(parse(core.ctx, "")).toBeNull();
    expect(parse(core.ctx, "frobnicate")!.error!.code).toBe("unknown_command");
  });

  test("errors carry their code for pythond.1+codes, and read as before for the others", async () => {
    core = new Core();
    const coded = core.client(SUBPROTOCOL_CODES);
    const plain = core.client(SUBPROTOCOL);
    const legacy = core.client(SUBPROTOCOL_LEGACY);
    expect(await coded.ask("run nope\n1")).toBe("ERR no_session: no session 'nope' -- create it first with: pysh new nope");
    expect(await plain.ask("run nope\n1")).toBe("ERR no session 'nope' -- create it first with: pysh new nope");
    expect(await legacy.ask("run nope\n1")).toBe("ERR no session 'nope' -- create it first with: pysh new nope");
    expect(await coded.ask("run\n1")).toBe("ERR usage: usage: run <name>\\n<code>");
    expect(await coded.ask("frobnicate")).toBe("ERR unknown_command: unknown: frobnicate");
    expect(await coded.ask("run Bad\n1")).toBe("ERR invalid_name: invalid session name (lowercase a-z, 0-9, _ and -, up to 80 characters)");
  });

  test("the caller is checked on every path, the plain run included", async () => {
    core = new Core();
    await core.session("w");
    const asHub = core.client(SUBPROTOCOL, "hub");
    expect(await asHub.ask("connect x 127.0.0.1:1 tok")).toBe("ERR connect is not accepted from a hub caller");
    expect(await asHub.ask("node-forget n1")).toBe("ERR node-forget is only accepted on the local socket");
    const node = core.client(SUBPROTOCOL, "node");
    expect(await node.ask("run w\nprint:hi")).toBe("ERR run is not accepted from a node caller");
    expect(await node.ask("ls")).toBe("ERR ls is not accepted from a node caller");
    const hub = core.client(SUBPROTOCOL, "hub");
    hub.send("run w\nprint:hi");
    expect(texts(await hub.until((t) => !t.startsWith("CELL ")))).toEqual(["CELL c1", "<hi>", "OK"]);
  });

  test("every command of the table has a handler, a target kind and a door for session commands", async () => {
    const { HANDLERS } = await import("../../src/daemon/dispatch.ts");
    for (const [name, spec] of Object.entries(COMMANDS)) {
      expect(typeof HANDLERS[name as CommandName]).toBe("function");
      if ((spec as { target?: string }).target === "session") expect(["run", "request", "attach"]).toContain((spec as { via?: string }).via!);
    }
  });

  test("names: a bare name is local unless a source knows it; a/b goes through source a", async () => {
    core = new Core();
    const made: string[] = [];
    const fake: TargetSource = {
      target(via, session, name) {
        if (via !== "far") return undefined;
        made.push(`${via}|${session}|${name}`);
        return { kind: "node", name, session } as unknown as Target;
      },
    };
    core.ctx.sources.push(fake);
    expect(resolveTarget(core.ctx, "work").kind).toBe("local");
    expect(resolveTarget(core.ctx, "far").session).toBe("far");
    expect(resolveTarget(core.ctx, "far/work").session).toBe("work");
    expect(made).toEqual(["far|far|far", "far|work|far/work"]);
    expect(() => resolveTarget(core.ctx, "near/work")).toThrow("invalid session name");
    expect(() => resolveTarget(core.ctx, "far/Bad")).toThrow("invalid session name");
    // the original's two-name form, only through a proxy or node
    expect(parse(core.ctx, "run far work\n1")!.req!.args).toEqual(["far/work"]);
    expect(parse(core.ctx, "fork far work\n1")!.req!.args).toEqual(["far/work"]);
    expect(parse(core.ctx, "run near work\n1")!.error!.message).toBe("usage: run <name>\\n<code>");
  });

  test("every command is logged: command and result lines, with the session", async () => {
    core = new Core();
    await core.session("w");
    const c = core.client();
    c.send("run w\nprint:hi");
    await c.until((t) => t === "OK");
    expect(await c.ask("run w --timeout=x\n1")).toStartWith("ERR usage: --timeout takes");
    const log = core.log();
    expect(log).toMatch(/event=command conn_id=\d+ peer=test:\d+ cmd=run session=w status= body_bytes=8\n/);
    expect(log).toMatch(/event=result conn_id=\d+ peer=test:\d+ cmd=run session=w status=ok body_bytes=8\n/);
    expect(log).toMatch(/event=result .*cmd=run session=w status=error/);
  });
});

describe("conn", () => {
  test("frames are answered in order; consecutive plain runs of one session overlap", async () => {
    core = new Core();
    const w = await core.session("w");
    const c = core.client();
    c.send("run w\nhang");
    c.send("run w\nprint:second");
    c.send("status w");
    await turns();
    // both runs reached the worker (the second waits there behind the first); status waits here
    expect(w.seen.filter((h) => h.op === "run").length).toBe(2);
    expect(w.seen.some((h) => h.op === "status")).toBe(false);
    expect(await c.next()).toBe("CELL c1");
  });

  test("a run with options, or another command, waits for the one before", async () => {
    core = new Core();
    const w = await core.session("w");
    const c = core.client();
    c.send("run w\nhang");
    c.send("run w --timeout 5\nprint:x");
    await turns();
    expect(w.seen.filter((h) => h.op === "run").length).toBe(1);
  });

  test("a closed connection stops taking frames; its queued frames are dropped", async () => {
    core = new Core();
    const w = await core.session("w");
    const c = core.client();
    c.send("run w\nhang");
    c.send("status w");
    await turns();
    c.close();
    await turns();
    expect(w.seen.some((h) => h.op === "status")).toBe(false);
  });
});

describe("run", () => {
  test("pythond.1 streams CELL, output, OK; a failure ends with ERR execution failed", async () => {
    core = new Core();
    await core.session("w");
    const c = core.client(SUBPROTOCOL);
    c.send("run w\nprint:hello\n");
    expect(texts(await c.until((t) => t === "OK"))).toEqual(["CELL c1", "<hello\n>", "OK"]);
    c.send("run w\nfail:Traceback: boom");
    expect(texts(await c.until((t) => t.startsWith("ERR")))).toEqual(["CELL c2", "ERR execution failed\nTraceback: boom"]);
    const coded = core.client(SUBPROTOCOL_CODES);
    coded.send("run w\nfail:boom");
    expect((await coded.until((t) => t.startsWith("ERR"))).at(-1)).toBe("ERR execution_failed: execution failed\nboom");
  });

  test("pythond.0.4 gets one reply: the output without trailing newlines, or ERR with output and error", async () => {
    core = new Core();
    await core.session("w");
    const c = core.client(SUBPROTOCOL_LEGACY);
    expect(await c.ask("run w\nprint:41\n\n")).toBe("41");
    expect(await c.ask("run w\nfail:boom")).toBe("ERR execution failed\nboom");
  });

  test("credits: a client that stops reading stops the cell at the window; reading resumes it", async () => {
    core = new Core();
    const w = await core.session("w");
    const c = core.client(SUBPROTOCOL);
    c.daemonEnd.hold(); // the client stops reading
    c.send("run w\nbig:" + 8 * 1024 * 1024);
    await turns(200);
    const acked = () => w.seen.filter((h) => h.op === "ack").reduce((n, h) => n + Number(h.n), 0);
    // the daemon holds at most its high-water mark plus the worker's window; nothing is acked
    // beyond what the client could take
    expect(c.daemonEnd.buffered()).toBeLessThan(3 * 1024 * 1024);
    const stuck = acked();
    await turns(200);
    expect(acked()).toBe(stuck);
    c.daemonEnd.release();
    const got = await c.until((t) => t === "OK");
    const bytes = got.reduce((n, m) => n + (typeof m === "string" ? 0 : m.length), 0);
    expect(bytes).toBe(8 * 1024 * 1024);
  });

  test("the worker dying mid-cell ends the run with session_dead, and the session shows dead", async () => {
    core = new Core();
    const w = await core.session("w");
    const c = core.client(SUBPROTOCOL_CODES);
    c.send("run w\nhang");
    expect(await c.next()).toBe("CELL c1");
    w.die();
    expect(await c.nextText()).toStartWith("ERR session_dead: session 'w' died during the cell");
    await turns();
    expect(await c.ask("ls")).toStartWith("  w: dead");
  });

  test("one-reply commands answer the worker's data; a failed poll is ERR <json> for pythond.1", async () => {
    core = new Core();
    await core.session("w");
    const c = core.client(SUBPROTOCOL);
    expect(await c.ask("vars w")).toBe('["x","y"]');
    expect(await c.ask("status w")).toBe('{"name":"w","pid":4242,"busy":false,"queued":0}');
    expect(await c.ask("complete w os.pa")).toBe('["os.pa_done"]');
    expect(await c.ask("poll w nope")).toBe('ERR {"error":"unknown cell nope"}');
    expect(await core.client(SUBPROTOCOL_LEGACY).ask("poll w nope")).toBe('{"error":"unknown cell nope"}');
    expect(await core.client(SUBPROTOCOL_CODES).ask("poll w nope")).toBe('ERR unknown_cell: {"error":"unknown cell nope"}');
    c.send("wait w f1");
    expect(texts(await c.until((t) => t === "OK"))).toEqual(["CELL f1", "<waited\n>", "OK"]);
  });
});

describe("attach", () => {
  test("OK attached then the replay; keys reach the worker; resize; detach", async () => {
    core = new Core();
    const w = await core.session("w");
    const c = core.client(SUBPROTOCOL);
    c.send("attach w 24 80");
    expect(await c.next()).toBe("OK attached");
    expect(dec.decode((await c.next()) as Uint8Array)).toBe(">>> ");
    c.sendBinary(new TextEncoder().encode("1+1\r"));
    w.screen("2\r\n");
    expect(dec.decode((await c.next()) as Uint8Array)).toBe("2\r\n");
    expect(w.typed).toBe("1+1\r");
    expect(await c.ask("resize w 30 100")).toBe("OK resized 30x100");
    expect(await c.ask("detach")).toBe("OK detached");
    await turns();
    expect(w.attachedIds).toEqual([]);
    expect(core.log()).toMatch(/event=attach .*session=w status=ok .*read_only=0/);
  });

  test("read-only: keys are dropped; the session ending detaches with the reason", async () => {
    core = new Core();
    const w = await core.session("w");
    const c = core.client(SUBPROTOCOL_CODES);
    c.send("attach w --read-only");
    expect(await c.next()).toBe("OK attached");
    await c.next(); // replay
    c.sendBinary(new TextEncoder().encode("x"));
    await turns();
    expect(w.typed).toBe("");
    w.die();
    expect(await c.nextText()).toBe("ERR session_dead: detached from session 'w': the session ended");
  });

  test("Ctrl-D at the REPL ends the attachment from the worker's side", async () => {
    core = new Core();
    const w = await core.session("w");
    const c = core.client(SUBPROTOCOL);
    c.send("attach w 24 80");
    expect(await c.next()).toBe("OK attached");
    await c.next();
    w.endAttachment(w.attachedIds[0]!);
    expect(await c.nextText()).toBe("OK detached");
    expect(await c.ask("detach")).toBe("ERR not attached");
  });
});
