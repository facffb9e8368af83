/**
 * The warm spare (src/sessions/spare.ts): a worker started ahead of time that the next `new` claims.
 * A claimed spare must be indistinguishable from a freshly started session, and an unclaimed one
 * must never leak: not listed, not adopted, gone when its daemon stops, crashes or restarts.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { childPids } from "../fixtures/proc.ts";
import { alive, makeEnv, sparesDir, startDaemon, until, type Daemon } from "./harness.ts";

function readySpare(d: Daemon): { pid: number; sock: string } | null {
  try {
    const f = readdirSync(sparesDir(d)).find((x) => x.endsWith(".json"));
    return f ? (JSON.parse(readFileSync(join(sparesDir(d), f), "utf8")) as { pid: number; sock: string }) : null;
  } catch {
    return null;
  }
}

/** Spare processes started for the daemon whose runtime lives in dir (from their environment). */
function sparePids(dir: string): number[] {
  const out: number[] = [];
  for (const p of readdirSync("/proc")) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const env = readFileSync(`/proc/${p}/environ`, "utf8");
      if (env.includes('"spare":true') && env.includes(dir)) out.push(Number(p));
    } catch {}
  }
  return out.filter(alive);
}

async function spareReady(d: Daemon) {
  await until(() => readySpare(d) !== null, "a spare to be ready");
  return readySpare(d)!;
}

describe("a claimed spare is a normal session", () => {
  test("name, directory, history, input() message, idle timeout; the spare is never listed", async () => {
    await using d = await startDaemon();
    expect((await d.pysh(["new", "first"])).code).toBe(0);
    const spare = await spareReady(d);
    expect((await d.pysh(["ls"])).stdout).toMatch(/^ {2}first: alive pid=\d+( \(pty\))?\n$/);

    const r = await d.pysh(["new", "second", "--idle-timeout", "30"], { cwd: d.e.home });
    expect(r.stdout).toBe(`OK second pid=${spare.pid}\n`); // the spare's process, now named
    expect(existsSync(spare.sock)).toBe(false); // its socket moved to the session's name
    expect((await d.pysh(["run", "second", "import os; os.getcwd()"])).stdout).toBe(`${d.e.home}\n`);
    const status = JSON.parse((await d.pysh(["status", "second"])).stdout);
    expect(status.pid).toBe(spare.pid);
    expect(status.uptime).toBeLessThan(5); // counted from the claim, not from the spare's start
    expect((await d.pysh(["run", "second", "input()"])).stderr).toContain("pysh attach second");
    const hist = join(d.e.home, ".pythond", "sessions", "second", "history.py");
    await d.pysh(["run", "second", "marker = 1"]);
    expect(readFileSync(hist, "utf8")).toContain("marker = 1");
    const record = JSON.parse(readFileSync(join(d.e.dir, "run", "pythond", "sessions", "second.json"), "utf8"));
    expect(record).toMatchObject({ name: "second", pid: spare.pid, cwd: d.e.home });
    expect((await d.pysh(["ls"])).stdout.split("\n").filter(Boolean).length).toBe(2);
    // --idle-timeout reaches a claimed spare
    const next = await spareReady(d);
    expect((await d.pysh(["new", "brief", "--idle-timeout", "0.5"])).stdout).toBe(`OK brief pid=${next.pid}\n`);
    await until(async () => /brief: dead \(ended after \d+ s idle/.test((await d.pysh(["ls"])).stdout), "the idle timeout to end it");
    // --python always starts its own interpreter
    const own = await d.pysh(["new", "third", "--python", "python3"]);
    expect(own.stdout).not.toBe(`OK third pid=${spare.pid}\n`);
  });

  test("PYTHOND_SPARE=0: no spare is started", async () => {
    const e = makeEnv();
    e.env.PYTHOND_SPARE = "0";
    await using d = await startDaemon([], e);
    await d.pysh(["new", "one"]);
    await d.pysh(["new", "two"]);
    expect(readySpare(d)).toBeNull();
    expect(childPids(d.pid).length).toBe(2);
  });
});

describe("an unclaimed spare never outlives its daemon", () => {
  test("daemon SIGKILL: the spare exits and removes its files; sessions live on and are adopted", async () => {
    const d = await startDaemon();
    await d.pysh(["new", "keep"]);
    const spare = await spareReady(d);
    d.proc.kill("SIGKILL");
    await d.proc.exited;
    await until(() => !alive(spare.pid), "the orphaned spare to exit");
    expect(readdirSync(sparesDir(d))).toEqual([]);
    await using d2 = await startDaemon([], d.e);
    expect((await d2.pysh(["ls"])).stdout).toMatch(/^ {2}keep: alive pid=\d+( \(pty\))?\n$/);
  });

  test("a daemon killed while its spare is still starting leaves no spare behind", async () => {
    await using d = await startDaemon();
    await d.pysh(["new", "keep"]); // the spare starts now...
    // ...and loses its daemon just after writing its record, while it is still setting up
    // (before it can know its parent): poll tightly, the window is a few milliseconds.
    while (readySpare(d) === null) await Bun.sleep(0.5);
    d.proc.kill("SIGKILL");
    await d.proc.exited;
    const mine = () => sparePids(d.e.dir);
    await until(() => mine().length === 0, "no spare of this daemon to be left");
  });

  test("pyctl stop ends the spare with the sessions; pyctl restart lets go of it", async () => {
    await using d = await startDaemon();
    await d.pysh(["new", "a"]);
    const spare = await spareReady(d);
    try {
      expect((await d.pyctl(["restart"])).code).toBe(0);
      await until(() => !alive(spare.pid), "the spare to end with the old daemon");
      await until(async () => (await d.pysh(["ls"])).stdout.includes("a: alive"), "the new daemon to adopt a");
      await d.pysh(["new", "b"]);
      const spare2 = await spareReady(d);
      const pids = [spare2.pid, ...d.workerPids()];
      expect(pids.length).toBe(3);
      expect((await d.pyctl(["stop"])).code).toBe(0);
      await until(() => pids.every((p) => !alive(p)), "the spare and the sessions to end");
    } finally {
      await d.pyctl(["stop"]); // the restarted daemon is not the harness's process
    }
  });
});
