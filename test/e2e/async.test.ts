/** fire, fork, poll, wait, int (issue: async cells). */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { alive, startDaemon, makeEnv, rawClient, until, type Daemon } from "./harness.ts";

let d: Daemon;
beforeAll(async () => {
  const e = makeEnv();
  e.env.PYTHOND_MAX_CELLS = "6";
  d = await startDaemon([], e);
  await d.pysh(["new", "work"]);
});
afterAll(async () => {
  await d?.[Symbol.asyncDispose]();
});

const cellOf = async (args: string[]) => {
  const r = await d.pysh(args);
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as { cell_id: string; status: string };
};
const poll = async (id?: string) => JSON.parse((await d.pysh(["poll", "work", ...(id ? [id] : [])])).stdout);
const waitDone = (id: string) => until(async () => (await poll(id)).status !== "running", `cell ${id} to end`);

describe("fire", () => {
  test("returns at once; a quick run is not blocked by a long fire", async () => {
    const f = await cellOf(["fire", "work", "import threading\ngate = threading.Event()\ngate.wait(30)\n'released'"]);
    expect(f).toEqual({ cell_id: expect.stringMatching(/^[0-9a-f]{12}$/), status: "fired" });
    expect((await d.pysh(["run", "work", "1 + 1"])).stdout).toBe("2\n");
    const st = JSON.parse((await d.pysh(["status", "work"])).stdout);
    expect(st.state).toBe("running");
    expect(st.running).toContain(f.cell_id);
    await d.pysh(["run", "work", "gate.set()"]);
    await waitDone(f.cell_id);
    expect(await poll(f.cell_id)).toEqual({ cell_id: f.cell_id, status: "done", output: "released" });
  });
  test("output of two concurrent fire cells never mixes; threads they start write into them", async () => {
    const code = (tag: string) =>
      // one namespace for both cells: each its own thread variable (a shared `t` rebound by the
      // other cell between start and join made join fail, 1 run in ~10 under load)
      `import threading\nfor i in range(200): print('${tag}', i)\nt_${tag} = threading.Thread(target=lambda: print('${tag} thread'))\nt_${tag}.start(); t_${tag}.join()`;
    const a = await cellOf(["fire", "work", code("A")]);
    const b = await cellOf(["fire", "work", code("B")]);
    await waitDone(a.cell_id);
    await waitDone(b.cell_id);
    const oa = (await poll(a.cell_id)).output as string;
    const ob = (await poll(b.cell_id)).output as string;
    expect(oa.split("\n")).toEqual([...Array.from({ length: 200 }, (_, i) => `A ${i}`), "A thread"]);
    expect(ob.split("\n")).toEqual([...Array.from({ length: 200 }, (_, i) => `B ${i}`), "B thread"]);
  });
  test("a failing fire: poll has error true and the traceback; wait exits 1", async () => {
    const f = await cellOf(["fire", "work", "print('partial'); 1/0"]);
    const w = await d.pysh(["wait", "work", f.cell_id]);
    expect(w.code).toBe(1);
    expect(w.stdout).toBe("partial\n");
    expect(w.stderr).toMatch(/^ERR execution failed\nTraceback[^]*ZeroDivisionError/);
    const p = await poll(f.cell_id);
    expect(p.status).toBe("error");
    expect(p.error).toBe(true);
    expect(p.output).toMatch(/^partial\nTraceback[^]*ZeroDivisionError: division by zero$/);
  });
  test("int interrupts a fire thread (best effort)", async () => {
    const f = await cellOf(["fire", "work", "import time\nwhile True: time.sleep(0.01)"]);
    await until(async () => JSON.parse((await d.pysh(["status", "work"])).stdout).running.includes(f.cell_id), "fire to run");
    expect((await d.pysh(["int", "work"])).stdout).toBe("OK int work: 1 thread (best-effort)\n");
    await waitDone(f.cell_id);
    expect((await poll(f.cell_id)).output).toContain("KeyboardInterrupt");
  });
  test("int sent right behind fire (before the cell's thread runs) still interrupts it", async () => {
    const c = await rawClient(d.e.sock, ["pythond.1"]);
    try {
      for (let i = 0; i < 20; i++) {
        // both frames at once: the worker often takes the int before the new thread has started
        c.send("fire work\nimport time\nwhile True: time.sleep(0.01)");
        c.send("int work");
        const fired = JSON.parse(await c.next() as string) as { cell_id: string };
        expect(await c.next()).toBe("OK int work: 1 thread (best-effort)");
        await waitDone(fired.cell_id);
        expect((await poll(fired.cell_id)).output).toContain("KeyboardInterrupt");
      }
    } finally {
      c.close();
    }
  });
  test("successful fire cells go to history.py when they finish", async () => {
    const f = await cellOf(["fire", "work", "fired_marker = 1"]);
    await waitDone(f.cell_id);
    const hist = await Bun.file(`${d.e.home}/.pythond/sessions/work/history.py`).text();
    expect(hist).toContain("fired_marker = 1");
  });
});

describe("fork", () => {
  test("new and rebound picklable names merge; unpicklable ones are skipped; mutation does not merge", async () => {
    await d.pysh(["run", "work", "base = [1]; keep = 'old'"]);
    const f = await cellOf(["fork", "work", "import os\nbase.append(2)\nkeep = 'new'\nnum = 5\nfn = lambda: 1\nfh = open(os.devnull)\nprint('child', os.getpid() != PARENT)"
      .replace("PARENT", JSON.parse((await d.pysh(["status", "work"])).stdout).pid)]);
    expect(f.status).toBe("forked");
    const w = await d.pysh(["wait", "work", f.cell_id]);
    // `wait` says on stderr what could not come back (issue 16 item 13), not only poll.
    expect(w).toEqual({ code: 0, stdout: "child True\n", stderr: `pysh: fork cell ${f.cell_id}: not merged back (not picklable): fn, fh\n` });
    const p = await poll(f.cell_id);
    expect(p.status).toBe("done");
    expect(p.merged.sort()).toEqual(["keep", "num"]);
    // `os` is pre-imported (as in the original), so the fork's `import os` rebinds nothing.
    expect(p.skipped.sort()).toEqual(["fh", "fn"]);
    expect((await d.pysh(["run", "work", "base, keep, num"])).stdout).toBe("([1], 'new', 5)\n");
  });
  test("int kills the fork's whole process group, grandchildren too; nothing merges", async () => {
    const f = await cellOf(["fork", "work", "import subprocess, time\nnever = 1\np = subprocess.Popen(['sleep', '300'])\nprint(p.pid, flush=True)\ntime.sleep(300)"]);
    await until(async () => /^\d+$/.test((await poll(f.cell_id)).output), "the grandchild pid");
    const grandchild = Number((await poll(f.cell_id)).output);
    expect(alive(grandchild)).toBe(true);
    expect((await d.pysh(["int", "work"])).stdout).toBe("OK int work: 1 process (killed)\n");
    await waitDone(f.cell_id);
    const p = await poll(f.cell_id);
    expect(p.status).toBe("error");
    expect(p.output).toContain("(killed)");
    expect(p.merged).toEqual([]);
    await until(() => !alive(grandchild), "the grandchild to die");
    expect((await d.pysh(["run", "work", "'never' in dir()"])).stdout).toBe("False\n");
  });
  test("forking while fire threads run does not deadlock the child", async () => {
    const spin = await cellOf(["fire", "work", "import time\nfor _ in range(3000): print('spin'); time.sleep(0.001)"]);
    const f = await cellOf(["fork", "work", "print('forked fine'); forked_ok = True"]);
    const w = await d.pysh(["wait", "work", f.cell_id, "--timeout", "30"]);
    expect(w.stdout).toBe("forked fine\n");
    await d.pysh(["int", "work"]);
    await waitDone(spin.cell_id);
  });
  test("a fork result over the limit is an error and merges nothing", async () => {
    const e = makeEnv();
    e.env.PYTHOND_FORK_RESULT_LIMIT = "1000";
    await using small = await startDaemon([], e);
    await small.pysh(["new", "s"]);
    const f = JSON.parse((await small.pysh(["fork", "s", "big = 'x' * 5000"])).stdout);
    const w = await small.pysh(["wait", "s", f.cell_id]);
    expect(w.code).toBe(1);
    expect(w.stderr).toContain("fork result over the limit (1000 bytes");
    expect((await small.pysh(["run", "s", "'big' in dir()"])).stdout).toBe("False\n");
  });
});

describe("poll, wait, int", () => {
  test("poll: latest fire/fork cell without an id (run cells do not count); unknown id is an error", async () => {
    const f = await cellOf(["fire", "work", "'latest fire'"]);
    await d.pysh(["wait", "work", f.cell_id]);
    await d.pysh(["run", "work", "'a run cell'"]);
    expect((await poll()).output).toBe("latest fire");
    const r = await d.pysh(["poll", "work", "000000000000"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('ERR {"cell_id":"000000000000","status":"error","output":"unknown cell"}\n');
  });
  test("poll on a session with no cells is idle", async () => {
    await d.pysh(["new", "fresh"]);
    expect((await d.pysh(["poll", "fresh"])).stdout).toBe('{"status":"idle"}\n');
    await d.pysh(["kill", "fresh"]);
  });
  test("wait --timeout on a running cell", async () => {
    const f = await cellOf(["fire", "work", "import threading\nev2 = threading.Event()\nev2.wait(60)"]);
    const w = await d.pysh(["wait", "work", f.cell_id, "--timeout", "0.2"]);
    expect(w.code).toBe(1);
    expect(w.stderr).toContain(`cell ${f.cell_id} is still running`);
    await d.pysh(["run", "work", "ev2.set()"]);
    expect((await d.pysh(["wait", "work", f.cell_id])).code).toBe(0);
  });
  test("int on a run stuck in time.sleep returns promptly; the session stays usable", async () => {
    const stuck = d.pysh(["run", "work", "import time; time.sleep(30)"]);
    await until(async () => JSON.parse((await d.pysh(["status", "work"])).stdout).state === "running", "the run to start");
    expect((await d.pysh(["int", "work"])).stdout).toBe("OK int work: 1 run (interrupted)\n");
    const r = await stuck;
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("KeyboardInterrupt");
    expect((await d.pysh(["run", "work", "'usable'"])).stdout).toBe("usable\n");
    expect((await d.pysh(["int", "work"])).stdout).toBe("OK no running cells in work\n");
  });
  test("eviction keeps running cells and drops the cells that finished first", async () => {
    const long = await cellOf(["fire", "work", "import threading\nev3 = threading.Event()\nev3.wait(60)"]);
    const first = await cellOf(["fire", "work", "'first'"]);
    await waitDone(first.cell_id);
    for (let i = 0; i < 8; i++) await d.pysh(["run", "work", `${i}`]);
    expect((await poll(long.cell_id)).status).toBe("running");
    expect((await d.pysh(["poll", "work", first.cell_id])).code).toBe(1);
    // The long cell, started before all of these, ends last: it is the newest result, and the
    // runs that ended before it go first (the cap is 6 here).
    await d.pysh(["run", "work", "ev3.set()"]);
    await waitDone(long.cell_id);
    for (let i = 0; i < 3; i++) await d.pysh(["run", "work", `${i}`]);
    expect(await poll(long.cell_id)).toEqual({ cell_id: long.cell_id, status: "done", output: "True" });
  });
});
