/**
 * Remote proxies end to end: daemon A (Unix socket only) proxies the name `srv` to the session
 * `srv` of daemon B (TLS listener, --token-file). Everything a session does works through A,
 * attach included; B restarting (same token, then a new one) is reported clearly and recovered
 * from; A restarting keeps its proxies.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { Daemon, makeEnv, rawClient, startDaemon, until } from "./harness.ts";
import { accessLog, accessLogWith, startListening, type Listening } from "./remote-harness.ts";

let b: Listening;
let a: Daemon;
let tokenFile: string;
let token: string;
const bArgs = (port: number) => ["--listen", `127.0.0.1:${port}`, "--tls", "--token-file", tokenFile];

beforeAll(async () => {
  const bEnv = makeEnv();
  tokenFile = join(bEnv.dir, "token");
  b = await startListening(bArgs(0), bEnv);
  token = readFileSync(tokenFile, "utf8").trim();
  a = await startDaemon();
  expect((await a.pyctl(["pin", b.certPath])).code).toBe(0);
  expect((await b.d.pysh(["new", "srv"])).code).toBe(0);
});
afterAll(async () => {
  await a?.[Symbol.asyncDispose]();
  await b?.d[Symbol.asyncDispose]();
});

const onA = (...args: string[]) => a.pysh(args);

describe("connect", () => {
  test("a bad token fails the probe, and nothing is created", async () => {
    const r = await a.pyctl(["connect", "srv", `127.0.0.1:${b.port}`, "--tls"], { env: { PYTHOND_TOKEN: "not-the-token-0000" } });
    expect(r).toMatchObject({ code: 1, stderr: "ERR remote probe failed: auth failed\n" });
    expect((await onA("ls")).stdout).toBe("(no sessions)\n");
  });

  test("connect, then the name is listed as a remote", async () => {
    const r = await a.pyctl(["connect", "srv", `127.0.0.1:${b.port}`, "--token-file", tokenFile, "--tls"]);
    expect(r).toEqual({ code: 0, stdout: `OK connected srv -> 127.0.0.1:${b.port} tls\n`, stderr: "" });
    expect((await onA("ls")).stdout).toBe(`  srv: -> 127.0.0.1:${b.port} tls (remote)\n`);
  });

  test("names: a local session cannot be disconnected, nor shadowed by a remote", async () => {
    expect((await onA("new", "work")).code).toBe(0);
    expect((await a.pyctl(["disconnect", "work"])).stderr).toBe("ERR 'work' is local, use kill\n");
    const clash = await a.pyctl(["connect", "work", `127.0.0.1:${b.port}`, "-", "--tls"], { stdin: token });
    expect(clash.stderr).toBe("ERR session 'work' already exists here (local); choose another name for the remote\n");
    expect((await a.pyctl(["disconnect", "nope"])).stderr).toBe("ERR no remote 'nope' (see: pysh ls)\n");
    await onA("kill", "work");
  });
});

describe("the proxied session", () => {
  test("run (streamed), errors, fire, poll, wait, status, vars, complete", async () => {
    expect(await onA("run", "srv", "import os; x = 41; print(os.getpid())")).toMatchObject({ code: 0 });
    const pid = Number((await onA("run", "srv", "os.getpid()")).stdout);
    expect(pid).toBe(JSON.parse((await b.d.pysh(["status", "srv"])).stdout).pid); // it ran on B
    expect((await onA("run", "srv", "x + 1")).stdout).toBe("42\n");
    const err = await onA("run", "srv", "raise ValueError('far')");
    expect(err.code).toBe(1);
    expect(err.stderr).toContain("ValueError: far");
    const big = await onA("run", "srv", "print('y' * 3_000_000)");
    expect(big.stdout.length).toBe(3_000_001);

    const fired = JSON.parse((await onA("fire", "srv", "import time; time.sleep(0.2); f = 7")).stdout);
    expect(fired.status).toBe("fired");
    expect((await onA("wait", "srv", fired.cell_id)).code).toBe(0);
    expect(JSON.parse((await onA("poll", "srv", fired.cell_id)).stdout)).toMatchObject({ status: "done" });
    expect(JSON.parse((await onA("vars", "srv")).stdout).vars).toEqual(expect.arrayContaining(["x", "f"]));
    expect(JSON.parse((await onA("status", "srv")).stdout).state).toBe("idle");
    expect(JSON.parse((await onA("complete", "srv", "os.pat")).stdout).matches).toContain("os.path");
  });

  test("int reaches a running cell on B", async () => {
    const running = onA("run", "srv", "import time; time.sleep(60)");
    await until(async () => JSON.parse((await onA("status", "srv")).stdout).state === "running", "the remote cell to run");
    expect((await onA("int", "srv")).code).toBe(0);
    const r = await running;
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("KeyboardInterrupt");
  });

  test("a client of the original protocol through the proxy", async () => {
    const c = await rawClient(a.e.sock, ["pythond.0.4"]);
    expect(await c.ask("run srv\nprint('hi'); x")).toBe("hi\n41");
    expect(await c.ask("run srv\n1/0")).toStartWith("ERR execution failed\n");
    c.close();
  });

  test("attach through the proxy: terminal bytes both ways, resize, detach", async () => {
    const c = await rawClient(a.e.sock, ["pythond.1"]);
    const dec = new TextDecoder();
    let screen = "";
    const texts: string[] = [];
    const pump = (async () => {
      for (;;) {
        const m = await c.next();
        if (typeof m === "string") texts.push(m);
        else screen += dec.decode(new Uint8Array(m));
        if (texts.includes("OK detached")) return;
      }
    })();
    c.send("attach srv 24 80");
    await until(() => texts.includes("OK attached") && screen.includes(">>> "), "the remote prompt");
    c.send(new TextEncoder().encode("x * 100\r"));
    await until(() => screen.includes("4100"), "the remote REPL's answer");
    c.send("resize srv 30 100");
    await until(() => texts.includes("OK resized 30x100"), "the resize reply");
    // detach while the remote REPL is still printing: what it sent before it saw the detach must
    // not reach a connection that is back in command mode
    c.send(new TextEncoder().encode("for i in range(40000): print('line', i)\r\r"));
    await until(() => screen.includes("line 2000\r\n"), "the loop's output");
    c.send("detach");
    await pump;
    expect(texts).toEqual(["OK attached", "OK resized 30x100", "OK detached"]);
    // the connection is back in command mode
    c.send("run srv\nx");
    expect(String(await c.next())).toStartWith("CELL ");
    expect(dec.decode(new Uint8Array((await c.next()) as ArrayBuffer))).toBe("41\n");
    expect(await c.next()).toBe("OK");
    c.close();
  });

  test("new and kill through a second proxy create and end a session on B", async () => {
    expect((await a.pyctl(["connect", "other", `127.0.0.1:${b.port}`, "--tls"], { env: { PYTHOND_TOKEN: token } })).code).toBe(0);
    expect((await onA("new", "other")).stdout).toMatch(/^OK other pid=\d+\n$/);
    expect((await b.d.pysh(["ls"])).stdout).toContain("  other: alive");
    expect((await onA("kill", "other")).stdout).toBe("OK killed other\n");
    expect((await b.d.pysh(["ls"])).stdout).not.toContain("other");
    expect((await a.pyctl(["disconnect", "other"])).stdout).toBe("OK disconnected other\n");
  });

  test("B's access log sees A's proxy as an authenticated TLS peer, without the token", async () => {
    const log = await accessLogWith(b.d, /event=command conn_id=\d+ peer=127\.0\.0\.1:\d+ cmd=run session=srv/);
    expect(log).toMatch(/event=auth conn_id=\d+ peer=127\.0\.0\.1:\d+ .*status=ok/);
    expect(log).toMatch(/event=command conn_id=\d+ peer=127\.0\.0\.1:\d+ cmd=run session=srv/);
    expect(log).not.toContain(token);
    expect(accessLog(a)).not.toContain(token);
  });
});

describe("when B goes away", () => {
  test("B restarted with the same token: A says it is unreachable, then recovers by itself", async () => {
    const port = b.port;
    b.d.proc.kill("SIGKILL");
    await b.d.proc.exited;
    const down = await onA("run", "srv", "x");
    expect(down.code).toBe(1);
    expect(down.stderr).toBe(
      `ERR remote 'srv' (127.0.0.1:${port} tls) is unreachable: connection refused by 127.0.0.1:${port} ` +
        "(no daemon listening there?) -- retrying in the background\n",
    );
    expect((await onA("ls")).stdout).toContain(`  srv: -> 127.0.0.1:${port} tls (remote, down: connection refused`);

    b = await startListening(bArgs(port), b.d.e);
    await until(async () => (await onA("run", "srv", "x")).stdout === "41\n", "the proxy to recover, namespace intact");
    await until(async () => (await onA("ls")).stdout === `  srv: -> 127.0.0.1:${port} tls (remote)\n`, "ls to show it healthy");
  });

  test("B restarted with a new token: A says so and how to reconnect; reconnecting works", async () => {
    const port = b.port;
    b.d.proc.kill("SIGKILL");
    await b.d.proc.exited;
    rmSync(tokenFile);
    b = await startListening(bArgs(port), b.d.e);
    const newToken = readFileSync(tokenFile, "utf8").trim();
    expect(newToken).not.toBe(token);
    let r = await onA("run", "srv", "x");
    // the idle link may not have noticed yet; the next command surely has
    await until(async () => (r = await onA("run", "srv", "x")).stderr.includes("rejected the token"), "the token error");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`ERR remote 'srv' (127.0.0.1:${port} tls) rejected the token`);
    expect(r.stderr).toContain("restarted with a new token");
    expect(r.stderr).toContain(`reconnect with: pyctl connect srv 127.0.0.1:${port} --token-file FILE --tls`);
    expect((await a.pyctl(["connect", "srv", `127.0.0.1:${port}`, "-", "--tls"], { stdin: newToken })).code).toBe(0);
    expect((await onA("run", "srv", "x")).stdout).toBe("41\n");
    token = newToken;
  });
});

describe("A's proxies", () => {
  test("survive A's restart, and disconnect forgets them", async () => {
    a.proc.kill("SIGKILL");
    await a.proc.exited;
    a = await new Daemon(a.e).start();
    await a.log.waitFor(/remote 'srv' -> 127\.0\.0\.1:\d+ tls restored/);
    await until(async () => (await onA("run", "srv", "x")).stdout === "41\n", "the restored proxy to work");
    expect((await a.pyctl(["disconnect", "srv"])).stdout).toBe("OK disconnected srv\n");
    const gone = await onA("run", "srv", "x");
    expect(gone.stderr).toBe("ERR no session 'srv' -- create it first with: pysh new srv\n");
  });
});
