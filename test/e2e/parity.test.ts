/**
 * Issue 16: parity with the original pythond and what a new user tripped on. Terminal behaviour
 * (Ctrl-C, operator echo, a foreground daemon's restart and log form, fire/fork in the attached
 * REPL) is driven through real terminals (tmux, test/fixtures/tmux.ts).
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Tmux } from "../fixtures/tmux.ts";
import { accessLogWith, alive, BIN, Daemon, exec, killGroup, LineWatcher, makeEnv, PYSH, startDaemon, until } from "./harness.ts";
import { ClientMachine, startListening } from "./remote-harness.ts";

function zombieChildren(pid: number): number[] {
  const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  return kids.filter((k) => {
    try {
      return /^\S+ \(.*\) Z/.test(readFileSync(`/proc/${k}/stat`, "utf8"));
    } catch {
      return false;
    }
  });
}

const PRE = ["os", "sys", "json", "subprocess", "shutil", "hashlib", "time", "re", "glob", "sqlite3", "socket"];

describe("pre-imported modules (as the original)", () => {
  test("a fresh session, the warm spare's and a --python venv's, has them, in vars and completion", async () => {
    await using d = await startDaemon();
    expect((await d.pysh(["new", "first"])).code).toBe(0); // started for it
    expect((await d.pysh(["new", "second"])).code).toBe(0); // the warm spare
    for (const s of ["first", "second"]) {
      expect(await d.pysh(["run", s, "os.getcwd() == %r and sqlite3.sqlite_version > ''".replace("%r", JSON.stringify(d.e.dir))])).toEqual({
        code: 0,
        stdout: "True\n",
        stderr: "",
      });
      expect(JSON.parse((await d.pysh(["vars", s])).stdout).vars).toEqual(PRE);
      expect(JSON.parse((await d.pysh(["complete", s, "os.path.jo"])).stdout).matches).toEqual(["os.path.join("]);
    }
    const venv = join(d.e.dir, "venv");
    const mk = await exec(["python3", "-m", "venv", "--without-pip", venv], d.e);
    expect(mk.code).toBe(0);
    expect((await d.pysh(["new", "v", "--python", join(venv, "bin", "python")])).code).toBe(0);
    expect((await d.pysh(["run", "v", "sys.prefix == %r and json.dumps([1])".replace("%r", JSON.stringify(venv))])).stdout).toBe("[1]\n");
  });
});

describe("stop, restart and the others over an authenticated TLS connection", () => {
  test("PYTHOND_HOST=… pyctl stop stops the remote daemon and its sessions; access-logged with the peer", async () => {
    const srv = await startListening(["--listen", "127.0.0.1:0", "--tls", "--show-token"]);
    await using _d = srv.d;
    using client = new ClientMachine({ port: srv.port, token: srv.token });
    expect((await client.pyctl(["pin", srv.certPath])).code).toBe(0);
    expect((await client.pysh(["new", "work"])).code).toBe(0);
    const worker = srv.d.workerPids()[0]!;
    expect(await client.pyctl(["stop"])).toEqual({ code: 0, stdout: "OK stopping daemon\n", stderr: "" });
    expect(await srv.d.proc.exited).toBe(0);
    await until(() => !alive(worker), "the session to end with the daemon");
    expect(await accessLogWith(srv.d, /event=result conn_id=\d+ peer=127\.0\.0\.1:\d+ cmd=stop session= status=ok/)).toBeTruthy();
  });
});

describe("a daemon that is starting", () => {
  test("pysh waits for a daemon that holds the start lock (adopting sessions) instead of failing", async () => {
    await using d = await startDaemon();
    await d.pysh(["new", "work"]);
    await d.pysh(["run", "work", "x = 41"]);
    await d.pysh(["new", "slow"]);
    const slow = JSON.parse((await d.pysh(["status", "slow"])).stdout).pid as number;
    // The next daemon cannot finish adopting a stopped worker: it holds the lock, not listening.
    process.kill(slow, "SIGSTOP");
    d.proc.kill("SIGKILL");
    await d.proc.exited;
    const d2 = Bun.spawn([BIN, "daemon"], { env: d.e.env, cwd: d.e.dir, stdout: "ignore", stderr: "pipe" });
    const log2 = new LineWatcher(d2.stderr as ReadableStream<Uint8Array>);
    try {
      const lock = join(d.e.dir, "run", "pythond", "daemon.lock");
      // It holds the lock and has removed the dead daemon's socket: it is adopting.
      await until(() => readFileSync(lock, "utf8").trim() === String(d2.pid) && !existsSync(d.e.sock), "the new daemon to take the lock");
      // Stand in for the socket until pysh has tried it once (proof it came while nobody served).
      let tried!: () => void;
      const triedOnce = new Promise<void>((r) => (tried = r));
      const stand = Bun.listen({ unix: d.e.sock, socket: { open: (s) => void (tried(), s.end()), data() {} } });
      const run = exec([PYSH, "run", "work", "x + 1"], d.e);
      await triedOnce;
      stand.stop(true);
      process.kill(slow, "SIGCONT");
      await log2.waitFor(/listening on/);
      expect(await run).toEqual({ code: 0, stdout: "42\n", stderr: "" });
    } finally {
      d2.kill("SIGKILL");
      killGroup(slow);
    }
  });
  test("with no daemon coming, the error is immediate and says how to start one", async () => {
    const e = makeEnv();
    const r = await exec([PYSH, "ls"], e);
    expect(r).toEqual({ code: 1, stdout: "", stderr: `ERR no daemon at ${e.sock} -- start one with: pythond daemon (or: pyctl start)\n` });
  });
});

describe("results that hide nothing", () => {
  test("poll exits 0 whatever the cell's state; unknown cell or session is ERR exit 1", async () => {
    await using d = await startDaemon();
    await d.pysh(["new", "work"]);
    const f = JSON.parse((await d.pysh(["fire", "work", "1/0"])).stdout).cell_id as string;
    await d.pysh(["wait", "work", f]);
    const p = await d.pysh(["poll", "work", f]);
    expect(p.code).toBe(0);
    expect(JSON.parse(p.stdout)).toMatchObject({ cell_id: f, status: "error" });
    expect((await d.pysh(["poll", "nope"])).stderr).toBe("ERR no session 'nope' -- create it first with: pysh new nope\n");
  });
  test("int <name> <cell_id> interrupts that cell only: a fork running beside it lives", async () => {
    await using d = await startDaemon();
    await d.pysh(["new", "work"]);
    const fork = JSON.parse((await d.pysh(["fork", "work", "import time; time.sleep(60)"])).stdout).cell_id as string;
    const fire = JSON.parse((await d.pysh(["fire", "work", "import time\nfor _ in range(600): time.sleep(0.1)"])).stdout).cell_id as string;
    expect((await d.pysh(["int", "work", fire])).stdout).toBe(`OK int work: cell ${fire} interrupted (best-effort)\n`);
    expect((await d.pysh(["wait", "work", fire])).stderr).toContain("KeyboardInterrupt");
    expect(JSON.parse((await d.pysh(["poll", "work", fork])).stdout).status).toBe("running");
    expect((await d.pysh(["int", "work", "000000000000"])).stderr).toBe("ERR no cell 000000000000 in work\n");
    expect((await d.pysh(["int", "work", fork])).stdout).toBe(`OK int work: cell ${fork} killed\n`);
  });
});

describe("through a terminal", () => {
  test("Ctrl-C on pysh run: the first interrupts the cell (exit 130); two leave it running and say how to get it", async () => {
    await using d = await startDaemon();
    await using tm = new Tmux(d.e);
    await d.pysh(["new", "work"]);
    const w = await tm.open(120, 40);
    await tm.type(w, "pysh run work 'import time; time.sleep(60)'; echo rc=$?", "Enter");
    await until(async () => JSON.parse((await d.pysh(["status", "work"])).stdout).state === "running", "the cell to run");
    await tm.keys(w, "C-c");
    let screen = await tm.waitFor(w, "rc=130");
    expect(screen).toContain("KeyboardInterrupt");
    expect(screen).toMatch(/pysh: interrupting cell [0-9a-f]{12}/);
    expect((await d.pysh(["run", "work", "1 + 1"])).stdout).toBe("2\n"); // the session lives

    writeFileSync(join(d.e.dir, "stubborn.py"), "while True:\n    try:\n        time.sleep(60)\n    except KeyboardInterrupt:\n        print('ignored', flush=True)\n");
    await tm.clear(w);
    await tm.type(w, "pysh run work @stubborn.py; echo rc=$?", "Enter");
    await until(async () => JSON.parse((await d.pysh(["status", "work"])).stdout).state === "running", "the cell to run");
    await tm.keys(w, "C-c");
    // The second Ctrl-C must come within 2 s of the first: wait only for pysh's own line (no
    // round trip to the worker), so a busy machine does not stretch the gap.
    await tm.waitFor(w, /pysh: interrupting cell/);
    await tm.keys(w, "C-c");
    screen = await tm.waitFor(w, "rc=130");
    const id = /left cell ([0-9a-f]{12}) running in 'work'/.exec(screen)![1]!;
    expect(screen).toContain(`wait for it:   pysh wait work ${id}`);
    expect(screen).toContain(`interrupt it:  pysh int work ${id}`);
    expect(JSON.parse((await d.pysh(["poll", "work", id])).stdout).status).toBe("running");
    expect((await d.pysh(["kill", "work"])).code).toBe(0); // it ignores interrupts: end it
    await d.pysh(["new", "work"]);
    // SIGTERM (an agent harness giving up) still leaves the cell running, as before.
    const p = Bun.spawn([PYSH, "run", "work", "import time; time.sleep(60)"], { env: d.e.env, stdout: "ignore", stderr: "ignore" });
    await until(async () => JSON.parse((await d.pysh(["status", "work"])).stdout).state === "running", "the new cell to run");
    p.kill("SIGTERM");
    await p.exited;
    expect(JSON.parse((await d.pysh(["status", "work"])).stdout).state).toBe("running");
    await d.pysh(["int", "work"]);
  });

  test("operator echo: the code on a terminal's stderr; the output too when stdout is captured; never into a file", async () => {
    await using d = await startDaemon();
    await using tm = new Tmux(d.e);
    await d.pysh(["new", "work"]);
    const w = await tm.open(120, 40);
    await tm.type(w, "pysh run work 'print(6 * 7)' > out.txt; echo done$((1))", "Enter");
    let screen = await tm.waitFor(w, "done1\n");
    expect(screen).toContain("» run work: print(6 * 7)\n42\n");
    expect(readFileSync(join(d.e.dir, "out.txt"), "utf8")).toBe("42\n");
    await tm.clear(w);
    await tm.type(w, "pysh run work 'print(5 * 5)'; echo done$((2))", "Enter");
    screen = await tm.waitFor(w, "done2\n");
    expect(screen.split("25").length - 1).toBe(1); // stdout is that terminal: not twice
    expect(screen).toContain("» run work: print(5 * 5)");
    await tm.type(w, "pysh fire work 'a = 1' 2> err.txt; PYTHOND_ECHO=0 pysh run work 'b = 2'; echo done$((3))", "Enter");
    screen = await tm.waitFor(w, "done3\n");
    expect(readFileSync(join(d.e.dir, "err.txt"), "utf8")).toBe("");
    expect(screen).not.toContain("b = 2\n");
    const forced = await d.pysh(["run", "work", "print('hi')"], { env: { PYTHOND_ECHO: "1" } });
    expect(forced).toEqual({ code: 0, stdout: "hi\n", stderr: "» run work: print('hi')\nhi\n" });
    expect((await d.pysh(["run", "work", "print('hi')"])).stderr).toBe(""); // a pipe: no echo
  });

  test("a foreground daemon: compact log lines on its terminal, restart keeps pid and terminal, Ctrl-C still stops it", async () => {
    const e = makeEnv();
    await using tm = new Tmux(e);
    const w = await tm.open(160, 40);
    await tm.type(w, "pythond daemon; echo daemon-exited=$?", "Enter");
    await tm.waitFor(w, /listening on/);
    const pid = await tm.foreground(w);
    const d = new Daemon(e);
    expect((await d.pysh(["new", "work"])).code).toBe(0);
    expect((await d.pysh(["run", "work", "1"])).code).toBe(0);
    expect((await d.pysh(["new", "gone"])).code).toBe(0);
    let screen = await tm.waitFor(w, /run work ok/);
    expect(screen).not.toContain("ACCESS");
    expect((await d.pyctl(["restart"])).stdout).toBe("OK restarting daemon\n");
    await until(async () => (await tm.count(w, "listening on")) === 2, "the restarted daemon");
    expect(await tm.foreground(w)).toBe(pid); // exec'd in place: same process, still the terminal's
    expect((await d.pysh(["run", "work", "x = 5; x"])).stdout).toBe("5\n");
    const st = JSON.parse((await d.pyctl(["status", "--json"])).stdout);
    expect(st.pid).toBe(pid);
    // Workers the previous image started are still its children: they are reaped, not zombies.
    expect((await d.pysh(["kill", "gone"])).code).toBe(0);
    await until(() => zombieChildren(pid).length === 0, "no zombie children of the restarted daemon");
    await tm.keys(w, "C-c");
    screen = await tm.waitFor(w, "daemon-exited=0");
    expect(screen).toContain("stopping (sessions keep running)");
    const worker = d.workerPids()[0]!;
    expect(alive(worker)).toBe(true);
    killGroup(worker);
  });

  test("fire and fork cells show in the attached REPL when they start and end", async () => {
    await using d = await startDaemon();
    await using tm = new Tmux(d.e);
    await d.pysh(["new", "work"]);
    const w = await tm.open(120, 40);
    await tm.type(w, "pysh attach work", "Enter");
    await tm.waitFor(w, /^>>>$/m);
    const f = JSON.parse((await d.pysh(["fire", "work", "print('from fire')"])).stdout).cell_id as string;
    await tm.waitFor(w, `[ai] fire ${f}: print('from fire')`);
    await tm.waitFor(w, `[ai] fire ${f} done\nfrom fire`);
    const k = JSON.parse((await d.pysh(["fork", "work", "1/0"])).stdout).cell_id as string;
    await tm.waitFor(w, `[ai] fork ${k}: 1/0`);
    const screen = await tm.waitFor(w, `[ai] fork ${k} error`);
    expect(screen).toContain("ZeroDivisionError");
    await tm.keys(w, "C-]");
  });
});

describe("log levels", () => {
  test("-q: no access lines on stderr (access.log keeps them); --log-level checked", async () => {
    const e = makeEnv();
    const p = Bun.spawn([BIN, "daemon", "-q"], { env: e.env, cwd: e.dir, stdout: "ignore", stderr: "pipe" });
    const d = new Daemon(e);
    d.proc = p;
    d.log = new LineWatcher(p.stderr as ReadableStream<Uint8Array>);
    await using _d = d;
    await until(async () => (await d.pyctl(["status"])).code === 0, "the quiet daemon");
    await d.pysh(["new", "work"]);
    await accessLogWith(d, /cmd=new session=work status=ok/);
    await d.pyctl(["stop"]);
    await p.exited;
    expect(d.log.text).toBe("");
    const bad = await exec([BIN, "daemon", "--log-level", "loud"], e);
    expect(bad).toEqual({ code: 1, stdout: "", stderr: 'ERR --log-level takes error, warn, info or debug (got "loud")\n' });
  });
});
