/** The daemon's life: one per socket, stale sockets, stop/status, signals, the access log. */
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { accessLogWith, alive, BIN, exec, makeEnv, rawClient, startDaemon, until } from "./harness.ts";

describe("start", () => {
  test("socket 0600 in 0700 directories; a second daemon on a live socket is refused", async () => {
    await using d = await startDaemon();
    expect(statSync(d.e.sock).mode & 0o777).toBe(0o600);
    expect(statSync(join(d.e.dir, "run")).mode & 0o777).toBe(0o700);
    expect(statSync(join(d.e.dir, "run", "pythond")).mode & 0o777).toBe(0o700);
    const second = await exec([BIN, "daemon"], d.e);
    expect(second.code).toBe(1);
    expect(second.stderr).toContain(`daemon already running at ${d.e.sock}`);
    expect((await d.pysh(["ls"])).stdout).toBe("(no sessions)\n");
  });
  test("two daemons racing to start: exactly one wins", async () => {
    const e = makeEnv();
    const a = Bun.spawn([BIN, "daemon"], { env: e.env, stderr: "pipe", stdout: "ignore" });
    const b = Bun.spawn([BIN, "daemon"], { env: e.env, stderr: "pipe", stdout: "ignore" });
    const loser = await Promise.race([a.exited.then(() => a), b.exited.then(() => b)]);
    expect(await new Response(loser.stderr).text()).toContain("daemon already running");
    const winner = loser === a ? b : a;
    expect(winner.exitCode).toBeNull();
    winner.kill("SIGKILL");
    await winner.exited;
  });
  test("a stale socket left by a killed daemon is cleaned up", async () => {
    const d = await startDaemon();
    d.proc.kill("SIGKILL");
    await d.proc.exited;
    expect(existsSync(d.e.sock)).toBe(true);
    await using d2 = await startDaemon([], d.e);
    expect((await d2.pysh(["ls"])).code).toBe(0);
  });
  test("no daemon: a clear error", async () => {
    const e = makeEnv();
    const r = await exec([join(BIN, "..", "pysh"), "ls"], e);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`ERR no daemon at ${e.sock} -- start one with: pythond daemon (or: pyctl start)\n`);
  });
});

describe("pyctl", () => {
  test("status alive, stop ends the daemon and its sessions, status not alive", async () => {
    await using d = await startDaemon();
    await d.pysh(["new", "work"]);
    const wpid = Number(JSON.parse((await d.pysh(["status", "work"])).stdout).pid);
    const st = await d.pyctl(["status"]);
    expect(st.code).toBe(0);
    expect(st.stdout).toStartWith(`socket: ${d.e.sock}\nalive: True\n`);
    expect((await d.pyctl(["stop"])).stdout).toBe("OK stopping daemon\n");
    expect(await d.proc.exited).toBe(0);
    await until(() => !alive(wpid), "the session's worker to end");
    const st2 = await d.pyctl(["status"]);
    expect(st2).toEqual({ code: 1, stdout: `socket: ${d.e.sock}\nalive: False\n`, stderr: "" });
  });
  test("--version on every role", async () => {
    const e = makeEnv();
    for (const tool of ["pythond", "pysh", "pyctl"]) {
      const r = await exec([join(BIN, "..", tool), "--version"], e);
      // version, then the commit and target baked in at build time (scripts/compile.ts)
      expect(r.stdout).toMatch(new RegExp(`^${tool} \\d+\\.\\d+\\.\\d+ \\(commit [0-9a-f]{12}(-dirty)?, ${process.platform}-${process.arch}\\)\\n$`));
    }
    const sub = await exec([BIN, "pysh", "--version"], e);
    expect(sub.stdout).toMatch(/^pysh /);
  });
});

describe("signals", () => {
  test("SIGTERM stops the daemon cleanly; sessions live on and are adopted by the next daemon", async () => {
    const d = await startDaemon();
    await d.pysh(["new", "keep"]);
    await d.pysh(["run", "keep", "data = list(range(5))"]);
    const wpid = Number(JSON.parse((await d.pysh(["status", "keep"])).stdout).pid);
    d.proc.kill("SIGTERM");
    expect(await d.proc.exited).toBe(0);
    expect(alive(wpid)).toBe(true);
    expect(existsSync(d.e.sock)).toBe(false);
    await using d2 = await startDaemon([], d.e);
    expect((await d2.pysh(["ls"])).stdout).toMatch(new RegExp(`^  keep: alive pid=${wpid}`));
    expect((await d2.pysh(["run", "keep", "data"])).stdout).toBe("[0, 1, 2, 3, 4]\n");
  });
});

describe("access log", () => {
  test("one ACCESS line per event, escaped, never code", async () => {
    await using d = await startDaemon();
    await d.pysh(["new", "work"]);
    await d.pysh(["run", "work", "secret_value = 'hunter2'"]);
    const raw = await rawClient(d.e.sock); // pysh refuses the name itself, before framing
    expect(await raw.ask("run Bad\n1")).toStartWith("ERR invalid session name");
    raw.close();
    const path = join(d.e.dir, "run", "pythond", "access.log");
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const log = await accessLogWith(d, /session=invalid status=error/);
    expect(log).not.toContain("hunter2");
    const lines = log.trim().split("\n");
    const re = /^ACCESS ts=\d{4}-\d\d-\d\dT[\d:.]+Z event=(connect|auth|command|result|attach|detach|disconnect|session) conn_id=\d* peer=\S* cmd=\S* session=\S* status=(ok|error|) body_bytes=\d*( \S+=\S*)*$/;
    for (const l of lines) expect(l).toMatch(re);
    expect(log).toMatch(/event=result conn_id=\d+ peer= cmd=run session=work status=ok body_bytes=24/);
    expect(log).toMatch(/event=result conn_id=\d+ peer= cmd=run session=invalid status=error/);
    await d.log.waitFor(/ACCESS ts=/); // mirrored on stderr too
  });
});
