/**
 * Reliability: worker crashes. sessions.test.ts covers the plain cases (a segfault, os._exit or
 * SIGKILL during an idle `pysh run`); these add what happens around a crash: memory bombs under an
 * address-space limit, a crash while output streams and other clients wait on the same session, a
 * crash in a fire thread and in a fork child, and that the daemon's own resources are unchanged
 * afterwards. Only the crashed session may die, with its reason; the daemon and the other
 * sessions carry on.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { fdCount, threadCount } from "../fixtures/proc.ts";
import { alive, rawClient, startDaemon, until, type Daemon } from "./harness.ts";

let d: Daemon;
beforeAll(async () => {
  d = await startDaemon();
  expect((await d.pysh(["new", "calm"])).code).toBe(0);
  await d.pysh(["run", "calm", "total = 0"]);
});
afterAll(async () => {
  await d?.[Symbol.asyncDispose]();
});

const statusPid = async (name: string) => Number(JSON.parse((await d.pysh(["status", name])).stdout).pid);

/** The daemon and the bystander session are fine, and the daemon is the same process. */
async function othersFine(daemonPid: number): Promise<void> {
  expect(d.pid).toBe(daemonPid);
  expect(alive(d.pid)).toBe(true);
  const r = await d.pysh(["run", "calm", "total += 1; total"]);
  expect(r.code).toBe(0);
  expect(Number(r.stdout)).toBeGreaterThan(0);
  expect((await d.pysh(["ls"])).stdout).toMatch(/^ {2}calm: alive pid=\d+/m);
}

const DEATH = /killed by SIG[A-Z]+|exited with code -?\d+/;

describe("memory bombs under an address-space limit (RLIMIT_AS set inside the cell)", () => {
  test("one big allocation: MemoryError, the session survives and frees it", async () => {
    await d.pysh(["new", "bomb1"]);
    const r = await d.pysh(["run", "bomb1", "import resource\nresource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\nhog = []\nwhile True: hog.append(bytearray(32 << 20))"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toStartWith("ERR execution failed\n");
    expect(r.stderr).toContain("MemoryError");
    expect((await d.pysh(["run", "bomb1", "del hog\nimport gc; gc.collect()\n'freed'"])).stdout).toBe("freed\n");
    expect((await d.pysh(["run", "bomb1", "len(bytearray(64 << 20))"])).stdout).toBe(`${64 << 20}\n`);
    await d.pysh(["kill", "bomb1"]);
  });

  test("memory kept full of small objects: only that session dies, with the reason", async () => {
    const daemonPid = d.pid;
    const fds = fdCount(d.pid);
    await d.pysh(["new", "bomb2"]);
    const wpid = await statusPid("bomb2");
    const bomb = "import resource\nresource.setrlimit(resource.RLIMIT_AS, (512 << 20, 512 << 20))\nhog = []\nwhile True: hog.append('a' * 1000 + str(len(hog)))";
    const first = await d.pysh(["run", "bomb2", bomb]);
    expect(first.code).toBe(1);
    expect(first.stderr).toMatch(/MemoryError|died during the cell/);
    // With the namespace holding nearly all the allowed memory, the worker cannot serve on: it
    // dies at the next request (CPython aborts when an allocation in its own machinery fails).
    // A worker that copes instead must keep answering correctly.
    let reason = "";
    for (let i = 0; i < 5 && !reason; i++) {
      const r = await d.pysh(["run", "bomb2", "1 + 1"]);
      const m = /died during the cell \((.*)\)\n$|is dead \((.*)\)/.exec(r.stderr);
      if (m) reason = m[1] ?? m[2]!;
      else expect(r.stdout === "2\n" || r.stderr.includes("MemoryError")).toBe(true);
    }
    if (reason) {
      expect(reason).toMatch(DEATH);
      await until(async () => (await d.pysh(["ls"])).stdout.includes(`  bomb2: dead (${reason})`), "ls to show bomb2 dead");
      await until(() => !alive(wpid), "the bombed worker to be gone");
    }
    await othersFine(daemonPid);
    await d.pysh(["kill", "bomb2"]);
    await until(() => fdCount(d.pid) <= fds, `daemon fds back to ${fds} (now ${fdCount(d.pid)})`);
  });
});

describe("crashes with clients attached to the session", () => {
  test("SIGKILL while output streams and more cells wait: every client gets the reason, none hangs", async () => {
    const daemonPid = d.pid;
    const fds = fdCount(d.pid);
    const threads = threadCount(d.pid);
    await d.pysh(["new", "victim"]);
    const wpid = await statusPid("victim");
    const streaming = await rawClient(d.e.sock, ["pythond.1"]);
    streaming.send("run victim\nimport time\nfor i in range(10**9):\n    print('tick', i, flush=True)\n    time.sleep(0.001)");
    expect(String(await streaming.next())).toMatch(/^CELL [0-9a-f]{12}$/);
    expect(new TextDecoder().decode((await streaming.next()) as ArrayBuffer)).toStartWith("tick 0");
    // Queued behind the running cell, on other connections and both subprotocols.
    const queued = await Promise.all([0, 1, 2, 3].map((i) => rawClient(d.e.sock, [i % 2 ? "pythond.1" : "pythond.0.4"])));
    const answers = queued.map(async (c) => {
      let r = await c.ask("run victim\n'never'");
      while (r.startsWith("CELL ")) r = String(await c.next()); // pythond.1: CELL first, then the end
      return r;
    });
    const fire = JSON.parse((await d.pysh(["fire", "victim", "import time; time.sleep(60)"])).stdout);
    const waiter = d.pysh(["wait", "victim", fire.cell_id]);
    // The bystander keeps working while all this is in flight.
    const calm = d.pysh(["run", "calm", "import time; time.sleep(0.2); 'calm done'"]);

    process.kill(wpid, "SIGKILL");
    let last: string | ArrayBuffer;
    do last = await streaming.next();
    while (typeof last !== "string");
    expect(last).toBe("ERR session 'victim' died during the cell (killed by SIGKILL)");
    for (const a of await Promise.all(answers)) expect(a).toMatch(/^ERR session 'victim' (died during the cell|is dead) \(killed by SIGKILL\)/);
    const w = await waiter;
    expect(w.code).toBe(1);
    expect(w.stderr).toMatch(/^ERR /);
    expect((await calm).stdout).toBe("calm done\n");
    expect((await d.pysh(["ls"])).stdout).toContain("  victim: dead (killed by SIGKILL)");
    for (const c of [streaming, ...queued]) c.close();
    await othersFine(daemonPid);
    await d.pysh(["kill", "victim"]);
    await until(() => fdCount(d.pid) <= fds, `daemon fds back to ${fds} (now ${fdCount(d.pid)})`);
    await until(() => threadCount(d.pid) <= threads + 2, `daemon threads back near ${threads} (now ${threadCount(d.pid)})`);
  });

  test("a segfault in a fire thread ends the session (one process), reported with the signal", async () => {
    const daemonPid = d.pid;
    await d.pysh(["new", "firecrash"]);
    const wpid = await statusPid("firecrash");
    const f = await d.pysh(["fire", "firecrash", "import ctypes, time; time.sleep(0.05); ctypes.string_at(0)"]);
    expect(f.code).toBe(0);
    await until(() => !alive(wpid), "the worker to die");
    await until(async () => (await d.pysh(["ls"])).stdout.includes("  firecrash: dead (killed by SIGSEGV)"), "ls to show the reason");
    expect((await d.pysh(["poll", "firecrash"])).stderr).toContain("session 'firecrash' is dead (killed by SIGSEGV)");
    await othersFine(daemonPid);
    await d.pysh(["kill", "firecrash"]);
  });

  test("a segfault in a fork child fails that cell only; the session lives on", async () => {
    await d.pysh(["new", "forkcrash"]);
    await d.pysh(["run", "forkcrash", "kept = 'still here'"]);
    const f = JSON.parse((await d.pysh(["fork", "forkcrash", "import ctypes; ctypes.string_at(0)"])).stdout);
    const w = await d.pysh(["wait", "forkcrash", f.cell_id]);
    expect(w.code).toBe(1);
    const p = JSON.parse((await d.pysh(["poll", "forkcrash", f.cell_id])).stdout);
    expect(p.status).toBe("error");
    expect((await d.pysh(["run", "forkcrash", "kept"])).stdout).toBe("still here\n");
    await d.pysh(["kill", "forkcrash"]);
  });
});

describe("interrupt storms", () => {
  test("`int` sent as fast as possible while cells run: every cell still ends and answers", async () => {
    await d.pysh(["new", "storm"]);
    const runner = await rawClient(d.e.sock, ["pythond.0.4"]);
    const interrupter = await rawClient(d.e.sock, ["pythond.0.4"]);
    let stop = false;
    let ints = 0;
    const storm = (async () => {
      while (!stop) {
        expect(await interrupter.ask("int storm")).toStartWith("OK ");
        ints++;
      }
    })();
    let interrupted = 0;
    for (let i = 0; i < 1500; i++) {
      // A SIGINT landing between the worker taking a cell and starting it once lost the cell.
      const reply = await Promise.race([runner.ask("run storm\n1"), Bun.sleep(10_000).then(() => "no answer")]);
      expect(reply, `cell ${i} after ${ints} interrupts`).toMatch(/^1$|^ERR execution failed\n[^]*KeyboardInterrupt/);
      if (reply !== "1") interrupted++;
    }
    stop = true;
    await storm;
    expect(ints, `${interrupted} cells were interrupted`).toBeGreaterThan(100);
    expect((await d.pysh(["run", "storm", "'calm again'"])).stdout).toBe("calm again\n");
    runner.close();
    interrupter.close();
    await d.pysh(["kill", "storm"]);
  });
});
