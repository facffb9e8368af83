/**
 * A proxy with an explicit remote session (issue 16, item 3; DESIGN "Routing"): through daemon A's
 * proxy `srv` to daemon B, `srv/<session>` names any session of B wherever a session name goes,
 * and the original pythond's `run <proxy> <remote-session>` form (also fire, fork) works on the
 * wire. Also: one link per proxy (B sees one authenticated connection however many commands), and
 * the error codes of pythond.1+codes survive the trip.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Daemon, makeEnv, rawClient, startDaemon, until } from "./harness.ts";
import { accessLog, startListening, type Listening } from "./remote-harness.ts";

let b: Listening;
let a: Daemon;

beforeAll(async () => {
  const bEnv = makeEnv();
  const tokenFile = join(bEnv.dir, "token");
  b = await startListening(["--listen", "127.0.0.1:0", "--tls", "--token-file", tokenFile], bEnv);
  const token = readFileSync(tokenFile, "utf8").trim();
  a = await startDaemon();
  expect((await a.pyctl(["pin", b.certPath])).code).toBe(0);
  expect((await b.d.pysh(["new", "srv"])).code).toBe(0);
  expect((await b.d.pysh(["new", "work"])).code).toBe(0);
  expect((await a.pyctl(["connect", "srv", `127.0.0.1:${b.port}`, token, "--tls"])).code).toBe(0);
});
afterAll(async () => {
  await a?.[Symbol.asyncDispose]();
  await b?.d[Symbol.asyncDispose]();
});

const onA = (...args: string[]) => a.pysh(args);

describe("proxy/session names", () => {
  test("pysh run/fire/wait/poll/status/vars/complete/int on srv/work reach B's session work", async () => {
    expect((await onA("run", "srv/work", "import os; w = 7; os.getpid()")).stdout).toBe(
      `${JSON.parse((await b.d.pysh(["status", "work"])).stdout).pid}\n`,
    );
    expect((await onA("run", "srv/work", "w * 6")).stdout).toBe("42\n");
    expect((await onA("run", "srv", "'w' in dir()")).stdout).toBe("False\n"); // srv alone is B's srv
    const fired = JSON.parse((await onA("fire", "srv/work", "v = 5")).stdout);
    expect((await onA("wait", "srv/work", fired.cell_id)).code).toBe(0);
    expect(JSON.parse((await onA("poll", "srv/work", fired.cell_id)).stdout).status).toBe("done");
    expect(JSON.parse((await onA("vars", "srv/work")).stdout).vars).toEqual(expect.arrayContaining(["w", "v"]));
    expect(JSON.parse((await onA("complete", "srv/work", "os.pat")).stdout).matches).toContain("os.path");
    expect((await onA("int", "srv/work")).code).toBe(0);
    expect((await onA("run", "srv/nope", "1")).stderr).toBe("ERR no session 'nope' -- create it first with: pysh new nope\n");
  });

  test("new and kill of srv/<name> create and end a session on B", async () => {
    expect((await onA("new", "srv/tmp")).stdout).toMatch(/^OK tmp pid=\d+\n$/);
    expect((await b.d.pysh(["ls"])).stdout).toContain("  tmp: alive");
    expect((await onA("kill", "srv/tmp")).stdout).toBe("OK killed tmp\n");
    expect((await b.d.pysh(["ls"])).stdout).not.toContain("tmp");
  });

  test("the original's form: run/fire/fork <proxy> <remote-session>, both subprotocols", async () => {
    const legacy = await rawClient(a.e.sock, ["pythond.0.4"]);
    expect(await legacy.ask("run srv work\nw + 1")).toBe("8");
    expect(JSON.parse(await legacy.ask("fire srv work\nz = 1")).status).toBe("fired");
    expect(JSON.parse(await legacy.ask("fork srv work\ny = 2")).status).toBe("forked");
    legacy.close();
    const ours = await rawClient(a.e.sock, ["pythond.1"]);
    ours.send("run srv work\nprint('streamed')");
    const cell = String(await ours.next());
    expect(cell).toStartWith("CELL ");
    expect(new TextDecoder().decode((await ours.next()) as ArrayBuffer)).toBe("streamed\n");
    expect(await ours.next()).toBe("OK");
    // two names for a local session (no proxy called that) stay a usage error, as before
    expect(await ours.ask("run work extra\n1")).toBe("ERR usage: run <name>\\n<code>");
    ours.close();
  });

  test("errors keep their code through the proxy for pythond.1+codes clients", async () => {
    const c = await rawClient(a.e.sock, ["pythond.1+codes"]);
    expect(c.protocol).toBe("pythond.1+codes");
    expect(await c.ask("status srv/nope")).toBe("ERR no_session: no session 'nope' -- create it first with: pysh new nope");
    c.send("run srv/work\n1/0");
    expect(String(await c.next())).toStartWith("CELL ");
    expect(String(await c.next())).toMatch(/^ERR execution_failed: execution failed\nTraceback[^]*ZeroDivisionError/);
    c.close();
  });

  test("one link per proxy: many commands at once, one authenticated connection on B", async () => {
    const before = (accessLog(b.d).match(/event=auth .*status=ok/g) ?? []).length;
    const runs = await Promise.all(Array.from({ length: 8 }, (_, i) => onA("run", "srv/work", `${i} * 2`)));
    runs.forEach((r, i) => expect(r.stdout).toBe(`${i * 2}\n`));
    await until(async () => (accessLog(b.d).match(/cmd=run session=work status=ok/g) ?? []).length >= 8, "B's log");
    expect((accessLog(b.d).match(/event=auth .*status=ok/g) ?? []).length).toBe(before);
  });
});
