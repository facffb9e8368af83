/** Sessions survive the daemon: crash, restart, upgrade (issue: sessions survive the daemon). */
import { describe, expect, test } from "bun:test";
import { spawn } from "bun";
import { writeFileSync, readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { alive, exec, makeEnv, PYSH, startDaemon, until, type Daemon } from "./harness.ts";

async function crash(d: Daemon): Promise<void> {
  d.proc.kill("SIGKILL");
  await d.proc.exited;
}

const pidOf = async (d: Daemon, name: string) => Number(JSON.parse((await d.pysh(["status", name])).stdout).pid);

describe("SIGKILL of the daemon loses nothing", () => {
  test("idle: namespace intact after restart", async () => {
    const d = await startDaemon();
    await d.pysh(["new", "work"]);
    await d.pysh(["run", "work", "import sqlite3\ndb = sqlite3.connect(':memory:')\ndb.execute('create table t(x)')\ndb.execute('insert into t values (42)')"]);
    const pid = await pidOf(d, "work");
    await crash(d);
    await using d2 = await startDaemon([], d.e);
    expect((await d2.pysh(["ls"])).stdout).toMatch(new RegExp(`^  work: alive pid=${pid}( \\(pty\\))?\n$`));
    expect((await d2.pysh(["run", "work", "db.execute('select x from t').fetchone()"])).stdout).toBe("(42,)\n");
    const pre = ["os", "sys", "json", "subprocess", "shutil", "hashlib", "time", "re", "glob", "sqlite3", "socket"];
    expect(JSON.parse((await d2.pysh(["vars", "work"])).stdout).vars).toEqual([...pre, "db"]);
  });
  test("a fire cell running while the daemon is down completes and is pollable", async () => {
    const d = await startDaemon();
    await d.pysh(["new", "work"]);
    const f = JSON.parse((await d.pysh(["fire", "work", "import time\nwhile not __import__('os').path.exists(FLAG): time.sleep(0.01)\n'finished'"
      .replace("FLAG", JSON.stringify(join(d.e.dir, "flag")))])).stdout);
    await crash(d);
    writeFileSync(join(d.e.dir, "flag"), "");
    await using d2 = await startDaemon([], d.e);
    await until(async () => JSON.parse((await d2.pysh(["poll", "work", f.cell_id])).stdout).status === "done", "fire to finish");
    expect(JSON.parse((await d2.pysh(["poll", "work", f.cell_id])).stdout).output).toBe("finished");
  });
  test("a run streaming output: the client is told the cell id; the full output is retrievable", async () => {
    const d = await startDaemon();
    await d.pysh(["new", "work"]);
    const flag = join(d.e.dir, "go");
    const code = `import os, time\nfor i in range(5): print('line', i, flush=True)\nwhile not os.path.exists(${JSON.stringify(flag)}): time.sleep(0.01)\nfor i in range(5, 10): print('line', i)\n'end'`;
    const client = spawn([PYSH, "run", "work", code], { env: d.e.env, stdout: "pipe", stderr: "pipe" });
    const reader = (client.stdout as ReadableStream<Uint8Array>).getReader();
    let seen = "";
    while (!seen.includes("line 4")) seen += new TextDecoder().decode((await reader.read()).value);
    await crash(d);
    expect(await client.exited).toBe(1);
    const err = await new Response(client.stderr).text();
    const m = /cell ([0-9a-f]{12}) keeps running; get its result with: pysh wait work \1/.exec(err);
    expect(m).not.toBeNull();
    writeFileSync(flag, "");
    await using d2 = await startDaemon([], d.e);
    const w = await d2.pysh(["wait", "work", m![1]!]);
    expect(w.code).toBe(0);
    expect(w.stdout).toBe(Array.from({ length: 10 }, (_, i) => `line ${i}\n`).join("") + "end\n");
  });
  test("a worker killed while the daemon is down is reported as lost, not alive", async () => {
    const d = await startDaemon();
    await d.pysh(["new", "gone"]);
    await d.pysh(["new", "stays"]);
    const pid = await pidOf(d, "gone");
    await crash(d);
    process.kill(pid, "SIGKILL");
    await until(() => !alive(pid), "the worker to die");
    await using d2 = await startDaemon([], d.e);
    expect((await d2.pysh(["ls"])).stdout).toMatch(/^ {2}gone: dead \(worker died while the daemon was down\)\n {2}stays: alive|^ {2}stays: alive pid=\d+\n {2}gone: dead \(worker died while the daemon was down\)\n$/);
    expect(d2.log.text).toContain("session gone: lost: worker pid");
    expect((await d2.pysh(["run", "gone", "1"])).stderr).toContain("session 'gone' is dead (worker died while the daemon was down)");
  });
});

describe("stop and restart", () => {
  test("pyctl restart under a loop of agent calls loses no completed cell", async () => {
    const d = await startDaemon();
    await d.pysh(["new", "work"]);
    await d.pysh(["run", "work", "done = []"]);
    let completed = 0;
    let restarted = false;
    const loop = (async () => {
      for (let i = 0; i < 60; i++) {
        const r = await d.pysh(["run", "work", `done.append(${i})`]);
        if (r.code === 0) completed++;
        if (i === 20) {
          expect((await d.pyctl(["restart"])).stdout).toBe("OK restarting daemon\n");
          restarted = true;
        }
      }
    })();
    await loop;
    expect(restarted).toBe(true);
    // Restarted in place (execve): the same process, so the lock holder and `hello` are d.pid.
    expect(d.log.text.split("listening on").length - 1).toBe(2);
    expect(Number(readFileSync(join(d.e.dir, "run", "pythond", "daemon.lock"), "utf8").trim())).toBe(d.pid);
    expect(JSON.parse((await d.pyctl(["status", "--json"])).stdout).pid).toBe(d.pid);
    try {
      const n = Number((await d.pysh(["run", "work", "len(done)"])).stdout);
      expect(completed).toBe(60); // clients wait for the successor instead of failing
      expect(n).toBe(completed);
    } finally {
      await d.pyctl(["stop"]);
      expect(await d.proc.exited).toBe(0);
    }
  });
  test("pyctl stop ends every worker (none orphaned); --keep-sessions ends only the daemon", async () => {
    const d = await startDaemon();
    for (const n of ["a", "b", "c"]) await d.pysh(["new", n]);
    const pids = d.workerPids();
    expect(pids.length).toBe(3);
    const d2e = makeEnv();
    await using other = await startDaemon([], d2e);
    await other.pysh(["new", "keep"]);
    expect((await other.pyctl(["stop", "--keep-sessions"])).stdout).toBe("OK stopping daemon\n");
    await other.proc.exited;
    expect(other.workerPids().every(alive)).toBe(true);
    expect((await d.pyctl(["stop"])).stdout).toBe("OK stopping daemon\n");
    await d.proc.exited;
    await until(() => pids.every((p) => !alive(p)), "every worker to end");
    expect(d.workerPids()).toEqual([]);
  });
});

describe("versions and idle sessions", () => {
  test("a worker of an incompatible version is reported clearly and still killable", async () => {
    const e = makeEnv();
    const sessions = join(e.dir, "run", "pythond", "sessions");
    await using d0 = await startDaemon([], e); // creates the runtime directories
    d0.proc.kill("SIGTERM");
    await d0.proc.exited;
    const sock = join(sessions, "old.sock");
    const fake = spawn(["python3", "-c", `
import socket, struct, json, os, time
s = socket.socket(socket.AF_UNIX); s.bind(${JSON.stringify(sock)}); s.listen(1)
json.dump({"name": "old", "pid": os.getpid(), "pgid": os.getpid(), "python": "x", "created": "", "sock": ${JSON.stringify(sock)},
  "secret": "s", "worker_protocol": 0, "binary_version": "0.0.1"}, open(${JSON.stringify(join(sessions, "old.json"))}, "w"))
print("ready", flush=True)
while True:
    c, _ = s.accept(); c.recv(65536)
    h = json.dumps({"op": "hello", "ok": True, "v": 0, "pid": os.getpid(), "name": "old"}).encode()
    c.sendall(struct.pack(">II", 4 + len(h), len(h)) + h)
`], { stdout: "pipe", stderr: "inherit", detached: true } as Parameters<typeof spawn>[1]);
    const r = (fake.stdout as ReadableStream<Uint8Array>).getReader();
    await r.read();
    await using d = await startDaemon([], e);
    expect((await d.pysh(["ls"])).stdout).toBe(
      `  old: incompatible pid=${fake.pid} (was started by another pythond version (worker protocol 0, this daemon speaks 1))\n`,
    );
    const run = await d.pysh(["run", "old", "1"]);
    expect(run.stderr).toContain("session 'old' was started by another pythond version");
    expect(run.stderr).toContain("end it with: kill old");
    expect((await d.pysh(["kill", "old"])).stdout).toBe("OK killed old\n");
    await fake.exited;
    expect(existsSync(join(sessions, "old.json"))).toBe(false);
  });
  test("--idle-timeout ends an unused session and logs why", async () => {
    await using d = await startDaemon();
    await d.pysh(["new", "idle", "--idle-timeout", "0.3"]);
    const pid = await pidOf(d, "idle");
    await until(() => !alive(pid), "the idle session to end");
    await until(async () => (await d.pysh(["ls"])).stdout.includes("idle: dead (ended after"), "ls to say why");
    const log = readFileSync(join(d.e.home, ".pythond", "sessions", "idle", "session.log"), "utf8");
    expect(log).toMatch(/ended after \d+ s idle \(--idle-timeout 0.3\)/);
    const r = await exec([PYSH, "ls"], d.e);
    expect(r.stdout).toContain("--idle-timeout 0.3");
  });
});
