/**
 * What a cell's mistake or a greedy client must not break (issue 15): streams rebound or closed by
 * a cell, exceptions in threads a cell started, a rebound `__import__`, a stopped worker, large
 * frames from many clients at once; and the handshake and start-up checks (subprotocol selection,
 * the access log's auth outcome, socket paths too long for a Unix socket).
 */
import { describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { accessLogWith, BIN, LineWatcher, makeEnv, rawClient, startDaemon, until } from "./harness.ts";
import { startListening } from "./remote-harness.ts";

describe("a cell's mistakes stay in that cell", () => {
  test("sys.stdout = None or a closed fd 1: the next cell has its output again", async () => {
    await using d = await startDaemon();
    await d.pysh(["new", "s"]);
    expect((await d.pysh(["run", "s", "import sys, os; sys.stdout = None; sys.stderr = None"])).code).toBe(0);
    expect(await d.pysh(["run", "s", "1 + 1"])).toMatchObject({ code: 0, stdout: "2\n" });
    expect((await d.pysh(["run", "s", "print('printed')"])).stdout).toBe("printed\n");
    expect((await d.pysh(["run", "s", "os.close(1); os.close(2)"])).code).toBe(0);
    expect((await d.pysh(["run", "s", "os.system('echo from-a-subprocess')"])).stdout).toBe("from-a-subprocess\n0\n");
    expect((await d.pysh(["run", "s", "print('still here')"])).stdout).toBe("still here\n");
    const err = await d.pysh(["run", "s", "1 / 0"]);
    expect(err.code).toBe(1);
    expect(err.stderr).toContain("ZeroDivisionError");
  });

  test("an exception in a thread a cell started reaches that cell, with the user's frames only", async () => {
    await using d = await startDaemon();
    await d.pysh(["new", "t"]);
    const code = "import threading\ndef work():\n    1 / 0\nt = threading.Thread(target=work, name='w1')\nt.start(); t.join()\nprint('after')";
    const r = await d.pysh(["run", "t", code]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Exception in thread w1:\nTraceback (most recent call last):\n");
    expect(r.stdout).toContain("in work\n");
    expect(r.stdout).toContain("ZeroDivisionError: division by zero\nafter\n");
    expect(r.stdout).not.toContain("capture.py");
    expect(r.stdout).not.toContain("threading.py");
    // a fire cell's thread too
    const f = JSON.parse((await d.pysh(["fire", "t", "threading.Thread(target=lambda: {}['k'], name='w2').start()"])).stdout);
    const w = await d.pysh(["wait", "t", f.cell_id]);
    expect(w.stdout).toContain("Exception in thread w2:");
    expect(w.stdout).toContain("KeyError: 'k'");
  });

  test("builtins.__import__ = None breaks neither status, fork, vars, complete nor poll", async () => {
    await using d = await startDaemon();
    await d.pysh(["new", "i"]);
    expect((await d.pysh(["run", "i", "import builtins; real = builtins.__import__; builtins.__import__ = None"])).code).toBe(0);
    expect(JSON.parse((await d.pysh(["status", "i"])).stdout)).toMatchObject({ state: "idle" });
    const fk = JSON.parse((await d.pysh(["fork", "i", "y = 6 * 7"])).stdout);
    expect((await d.pysh(["wait", "i", fk.cell_id])).code).toBe(0);
    expect((await d.pysh(["run", "i", "y"])).stdout).toBe("42\n");
    expect(JSON.parse((await d.pysh(["vars", "i"])).stdout).vars).toContain("y");
    expect((await d.pysh(["complete", "i", "rea"])).stdout).toContain("real");
    expect(JSON.parse((await d.pysh(["poll", "i"])).stdout).status).toBe("done");
    expect((await d.pysh(["run", "i", "builtins.__import__ = real; import json; json.dumps(1)"])).stdout).toBe("1\n");
  });
});

describe("a stopped worker", () => {
  test("status answers within a bound with state unresponsive, ls shows it, and both recover", async () => {
    await using d = await startDaemon();
    await d.pysh(["new", "z"]);
    const pid = JSON.parse((await d.pysh(["status", "z"])).stdout).pid as number;
    process.kill(pid, "SIGSTOP");
    try {
      const st = await d.pysh(["status", "z"]);
      expect(st.code).toBe(0);
      expect(JSON.parse(st.stdout)).toMatchObject({ state: "unresponsive", process: "stopped", pid });
      expect((await d.pysh(["ls"])).stdout).toBe(`  z: unresponsive pid=${pid} (process stopped (SIGSTOP?))\n`);
    } finally {
      process.kill(pid, "SIGCONT");
    }
    expect(JSON.parse((await d.pysh(["status", "z"])).stdout).state).toBe("idle");
    expect((await d.pysh(["ls"])).stdout).toBe(`  z: alive pid=${pid} (pty)\n`);
  });

  test("a daemon (re)started beside a stopped worker serves the others at once, and adopts it on SIGCONT", async () => {
    const e = makeEnv();
    e.env.PYTHOND_ADOPT_TIMEOUT_MS = "500";
    const d1 = await startDaemon([], e);
    await d1.pysh(["new", "stopped"]);
    await d1.pysh(["new", "fine"]);
    expect((await d1.pysh(["run", "stopped", "kept = 'here'"])).code).toBe(0);
    const pid = JSON.parse((await d1.pysh(["status", "stopped"])).stdout).pid as number;
    d1.proc.kill("SIGKILL");
    await d1.proc.exited;
    process.kill(pid, "SIGSTOP");
    await using d = await startDaemon([], e); // it used to wait for that worker's answer for ever
    try {
      await d.log.waitFor(new RegExp(`session stopped: not adopted yet: worker pid ${pid} is stopped \\(SIGSTOP\\); adopting it once it answers`));
      expect((await d.pysh(["ls"])).stdout).toContain(`  stopped: unresponsive pid=${pid} (process stopped: kill -CONT ${pid})\n`);
      expect((await d.pysh(["run", "fine", "6 * 7"])).stdout).toBe("42\n");
      const r = await d.pysh(["run", "stopped", "kept"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(`ERR session 'stopped' does not answer (process stopped: kill -CONT ${pid}) -- the daemon takes it back once it does; or: kill stopped\n`);
    } finally {
      process.kill(pid, "SIGCONT");
    }
    await d.log.waitFor(new RegExp(`session stopped: adopted worker pid ${pid}`));
    expect((await d.pysh(["run", "stopped", "kept"])).stdout).toBe("here\n");
    expect((await d.pysh(["ls"])).stdout).toContain(`  stopped: alive pid=${pid} (pty)\n`);
  });

  test("a worker wedged in C code holding the GIL: status says unresponsive (running), ls says so, kill still ends it", async () => {
    await using d = await startDaemon();
    await d.pysh(["new", "g"]);
    const pid = JSON.parse((await d.pysh(["status", "g"])).stdout).pid as number;
    // Catastrophic backtracking: the regex engine never releases the GIL, so the worker's IO thread
    // cannot answer. The cell waits for `go` first, so that `fire` itself gets its answer.
    const go = join(d.e.dir, "go");
    const started = join(d.e.dir, "started");
    const code = [
      "import os, re, time",
      `while not os.path.exists(${JSON.stringify(go)}): time.sleep(0.005)`,
      `open(${JSON.stringify(started)}, 'w').close()`,
      "re.match(r'(a+)+$', 'a' * 40 + 'b')",
    ].join("\n");
    const f = JSON.parse((await d.pysh(["fire", "g", code])).stdout);
    expect(f.status).toBe("fired");
    await Bun.write(go, "");
    await until(() => existsSync(started), "the cell to enter the regex");
    let st: Record<string, unknown> = {};
    await until(async () => (st = JSON.parse((await d.pysh(["status", "g"])).stdout)).state === "unresponsive", "status: unresponsive");
    expect(st).toMatchObject({ state: "unresponsive", process: "running", pid });
    expect((await d.pysh(["ls"])).stdout).toMatch(new RegExp(`^  g: unresponsive pid=${pid} \\(no answer to status for \\d+ s\\)\\n$`));
    expect((await d.pysh(["kill", "g"])).stdout).toBe("OK killed g\n");
    expect((await d.pysh(["ls"])).stdout).toBe("(no sessions)\n");
  });
});

describe("memory that clients can take", () => {
  test("--max-inflight: a large frame beyond the bound gets ERR busy at once; small ones pass; one large cell alone always runs", async () => {
    await using d = await startDaemon(["--max-inflight", "1"]);
    await d.pysh(["new", "m"]);
    const flag = join(d.e.dir, "go");
    const pad = "#" + "x".repeat(3 * 1024 * 1024); // 3 MiB: alone over the 1 MiB bound, and admitted
    const a = await rawClient(d.e.sock, ["pythond.1"]);
    a.send(`run m\n${pad}\nimport os, time\nwhile not os.path.exists(${JSON.stringify(flag)}): time.sleep(0.005)\nprint('a done')`);
    expect(String(await a.next())).toStartWith("CELL "); // A's frame is in flight (its cell runs)
    const b = await rawClient(d.e.sock, ["pythond.1"]);
    const busy = await b.ask(`run m\n#${"y".repeat(2 * 1024 * 1024)}\nprint('b')`);
    expect(busy).toStartWith("ERR busy: 3 MiB of requests are in flight and this one is 2 MiB (limit 1 MiB, pythond daemon --max-inflight MiB)");
    expect(await b.ask("ls")).toStartWith("  m: alive pid="); // small frames pass meanwhile
    await Bun.write(flag, "");
    const outA = new TextDecoder().decode((await a.next()) as ArrayBuffer);
    expect(outA).toBe("a done\n");
    expect(await a.next()).toBe("OK");
    const again = await b.ask(`run m\n#${"y".repeat(2 * 1024 * 1024)}\nprint('b ran')`);
    expect(again).toStartWith("CELL ");
    expect(new TextDecoder().decode((await b.next()) as ArrayBuffer)).toBe("b ran\n");
    await accessLogWith(d, /event=result .*cmd=run session=m status=error .*event_detail=busy/);
    a.close();
    b.close();
  });
});

describe("handshake and start-up checks", () => {
  test("an unknown subprotocol offered is not selected (RFC 6455): no header back, the original's behaviour", async () => {
    await using d = await startDaemon();
    /** The daemon's answer to a hand-made upgrade offering `offer` (Bun's client refuses a server that selects none). */
    const answer = async (offer: string) => {
      let got = "";
      let done!: () => void;
      const ended = new Promise<void>((r) => (done = r));
      const s = await Bun.connect({
        unix: d.e.sock,
        socket: { data: (sock, b) => void ((got += Buffer.from(b).toString("latin1")), got.includes("\r\n\r\n") && sock.end()), close: () => done(), error: () => done() },
      });
      s.write(
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
          `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ${offer}\r\n\r\n`,
      );
      await ended;
      return got.split("\r\n\r\n")[0]!;
    };
    for (const offer of ["evil", "pythond.2", "evil, pythond.3"]) {
      const head = await answer(offer);
      expect(head).toStartWith("HTTP/1.1 101 Switching Protocols");
      expect(head.toLowerCase()).not.toContain("sec-websocket-protocol");
    }
    expect(await answer("evil, pythond.1")).toContain("Sec-WebSocket-Protocol: pythond.1");
    expect(await answer("pythond.0.4")).toContain("Sec-WebSocket-Protocol: pythond.0.4");
    const legacy = await rawClient(d.e.sock, ["pythond.0.4"]);
    expect(await legacy.ask("ls")).toBe("(no sessions)");
    legacy.close();
  });

  test("a request the daemon's server rejects (400, 431) is logged as rejected, not as auth ok", async () => {
    const srv = await startListening(["--listen", "127.0.0.1:0", "--show-token"], makeEnv(), "tcp");
    await using _d = srv.d;
    const send = async (extra: string) => {
      const head =
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
        `Sec-WebSocket-Version: 13\r\nAuthorization: Bearer ${srv.token}\r\n${extra}\r\n`;
      let got = "";
      let done!: () => void;
      const closed = new Promise<void>((r) => (done = r));
      const s = await Bun.connect({ hostname: "127.0.0.1", port: srv.port, socket: { data: (_s, d) => void (got += Buffer.from(d).toString("latin1")), close: () => done(), error: () => done() } });
      s.write(head);
      await closed;
      return got.split("\r\n")[0];
    };
    expect(await send(Array.from({ length: 300 }, (_, i) => `X-H${i}: v\r\n`).join(""))).toBe("HTTP/1.1 431 Request Header Fields Too Large");
    expect(await send("X-Bad: a\u0001b\r\n")).toBe("HTTP/1.1 400 Bad Request");
    const log = await accessLogWith(srv.d, /event=auth .*detail=daemon_http_400/);
    expect(log).toMatch(/event=auth .*status=error .*reason=bad_request detail=daemon_http_431/);
    expect(log).not.toMatch(/event=auth .*status=ok/);
  });

  test("a PYTHOND_SOCK too long for the sessions' sockets is refused at start-up, saying by how much", async () => {
    const e = makeEnv();
    const dir = join(e.dir, "d".repeat(Math.max(1, 80 - e.dir.length)));
    const sock = join(dir, "p.sock"); // fits itself; <runtime>/sessions/s-<16 hex>.sock does not
    const p = Bun.spawn([BIN, "daemon"], { env: { ...e.env, PYTHOND_SOCK: sock }, stdout: "ignore", stderr: "pipe" });
    const log = new LineWatcher(p.stderr as ReadableStream<Uint8Array>);
    const outcome = await Promise.race([p.exited.then(() => "exited"), log.waitFor(/listening on/).then(() => "listening", () => "exited")]);
    if (outcome === "listening") p.kill("SIGKILL"); // (before: it started, and every `new` failed)
    expect(outcome).toBe("exited");
    expect(await p.exited).toBe(1);
    expect(log.text).toMatch(/^ERR socket path too long: .*\/pythond\/(sessions|spares)\/\S+\.sock is \d+ bytes, the limit for a Unix socket is 107; choose a PYTHOND_SOCK at least \d+ bytes shorter\n$/);
    expect(existsSync(sock)).toBe(false);
  });
});
