/**
 * The TypeScript client library (`pythond/client`, src/client/lib.ts) against the real binary:
 * every operation, streaming, errors with their stable codes, a remote daemon over TLS with a
 * pinned certificate, and a session that dies under it.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { connect, PythondError, type PythondClient } from "pythond/client";
import { startDaemon, makeEnv, type Daemon } from "./harness.ts";

let d: Daemon;
let c: PythondClient;

beforeAll(async () => {
  d = await startDaemon();
  c = await connect({ socket: d.e.sock });
});
afterAll(async () => {
  c?.close();
  await d?.[Symbol.asyncDispose]();
});

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(PythondError);
    return (e as PythondError).code;
  }
  throw new Error("expected a PythondError");
}

test("new, run, streaming, result fields", async () => {
  const s = await c.new("lib");
  const r = await s.run("x = 41\nprint(x + 1)");
  expect(r.ok).toBe(true);
  expect(r.output).toBe("42\n");
  expect(r.cellId).toMatch(/^[0-9a-f]{12}$/);
  const chunks: string[] = [];
  let cell = "";
  const r2 = await s.run("import time\nfor i in range(3):\n    print(i, flush=True); time.sleep(0.06)", {
    onOutput: (t) => chunks.push(t),
    onCell: (id) => (cell = id),
  });
  expect(chunks.join("")).toBe("0\n1\n2\n");
  expect(chunks.length).toBeGreaterThan(1); // streamed as produced, not at the end
  expect(cell).toBe(r2.cellId!);
  const it: string[] = [];
  const st = s.stream("print('a'); print('b')");
  for await (const t of st) it.push(t);
  expect(it.join("")).toBe("a\nb\n");
  expect((await st.result).ok).toBe(true);
});

test("a failing cell is a result with the traceback; check() turns it into execution_failed", async () => {
  const s = c.session("lib");
  const r = await s.run("print('before')\n1/0");
  expect(r.ok).toBe(false);
  expect(r.output).toBe("before\n");
  expect(r.error).toContain("ZeroDivisionError");
  expect(() => r.check()).toThrow(PythondError);
  const t = await s.run("import time\nwhile True: time.sleep(0.05)", { timeout: 0.3 });
  expect(t.ok).toBe(false);
  expect(t.error).toContain("KeyboardInterrupt");
  expect((await s.run("input()")).error).toContain("input() is not available");
});

test("fire, poll, wait, fork, interrupt, vars, complete, status, ls", async () => {
  const s = c.session("lib");
  const id = await s.fire("import time\ntime.sleep(0.2)\nprint('fired')\ny = 7");
  expect((await s.poll(id)).cell_id).toBe(id);
  const w = await s.wait(id);
  expect(w).toMatchObject({ ok: true, output: "fired", cellId: id });
  const f = await s.fork("z = y * 6");
  expect((await s.wait(f)).ok).toBe(true);
  expect((await s.run("print(z)")).output).toBe("42\n");
  expect(await s.vars()).toEqual(expect.arrayContaining(["x", "y", "z"]));
  expect(await s.complete("x.bit_")).toContain("x.bit_length()");
  const st = await s.status();
  expect(st).toMatchObject({ state: "idle", running: [] });
  expect(st.pid).toBeGreaterThan(0);
  expect(await c.ls()).toContainEqual({ name: "lib", state: "alive", pid: st.pid });
  const long = await s.fire("import time\nwhile True: time.sleep(0.02)");
  expect(await s.interrupt()).toContain("1 thread");
  expect((await s.wait(long)).ok).toBe(false);
  expect((await c.hello()).protocol).toBeGreaterThan(0);
});

test("errors carry stable codes", async () => {
  expect(await code(c.session("nope").run("1"))).toBe("no_session");
  expect(await code(c.new("lib"))).toBe("session_exists");
  expect(await code(c.new("Bad Name"))).toBe("invalid_name");
  expect(await code(c.session("UPPER").status())).toBe("invalid_name"); // the daemon's word for it, classified
  expect(await code(c.session("lib").poll("000000000000"))).toBe("unknown_cell");
  const id = await c.session("lib").fire("import time; time.sleep(3)");
  expect(await code(c.session("lib").wait(id, { timeout: 0.1 }))).toBe("timeout");
  await c.session("lib").interrupt();
  expect(await code(connect({ socket: d.e.sock + ".none" }))).toBe("daemon_unreachable");
});

test("a session that dies mid-cell: session_dead, listed dead, replaceable; kill", async () => {
  const s = await c.new("dies");
  expect(await code(s.run("import os; os._exit(3)"))).toBe("session_dead");
  expect((await c.ls()).find((x) => x.name === "dies")).toMatchObject({ state: "dead" });
  expect(await code(s.run("1"))).toBe("session_dead");
  await c.new("dies", { replace: true });
  expect((await s.run("1 + 1")).output).toBe("2\n");
  await s.kill();
  expect(await code(s.status())).toBe("no_session");
});

test("a callback that throws fails its call after the reply; the connection stays in step", async () => {
  const s = c.session("lib");
  let err: unknown;
  try {
    await s.run("for i in range(3): print(i)", {
      onOutput: () => {
        throw new Error("callback failed");
      },
    });
  } catch (e) {
    err = e;
  }
  expect((err as Error).message).toBe("callback failed");
  expect((await s.run("print('in step')")).output).toBe("in step\n");
});

test("calls on one client are queued in order (concurrent callers get their own replies)", async () => {
  const s = c.session("lib");
  const rs = await Promise.all([s.run("print(1)"), s.vars(), s.run("print(2)"), s.status()]);
  expect((rs[0] as { output: string }).output).toBe("1\n");
  expect((rs[2] as { output: string }).output).toBe("2\n");
});

test("remote daemon over TLS: host/token/tls options with a pinned certificate", async () => {
  await using r = await startDaemon(["--listen", "127.0.0.1:0", "--tls", "--show-token"]);
  const [, port] = (await r.log.waitFor(/listening on tls:\/\/127\.0\.0\.1:(\d+)/)) as unknown as [string, string];
  const [, token] = (await r.log.waitFor(/token=(\S+)/)) as unknown as [string, string];
  const mine = makeEnv();
  const pin = await r.pyctl(["pin", `${r.e.home}/.pythond/tls/cert.pem`], { env: { HOME: mine.home } });
  expect(pin.code).toBe(0);
  const home = process.env.HOME;
  process.env.HOME = mine.home; // the library reads pins from ~/.pythond/tls, as pysh
  try {
    expect(await code(connect({ host: `127.0.0.1:${port}`, token: "wrong", tls: true }))).toBe("auth_failed");
    const rc = await connect({ host: `127.0.0.1:${port}`, token, tls: true });
    const s = await rc.new("far");
    expect((await s.run("print('over tls')")).output).toBe("over tls\n");
    rc.close();
  } finally {
    process.env.HOME = home;
  }
});
