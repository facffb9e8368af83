/** Sessions: new/ls/kill/status/vars/complete, names, history files, dead workers (REFERENCE). */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { alive, startDaemon, until, type Daemon } from "./harness.ts";

let d: Daemon;
beforeAll(async () => {
  d = await startDaemon();
});
afterAll(async () => {
  await d?.[Symbol.asyncDispose]();
});

describe("new", () => {
  test("OK <name> pid=<pid>, and the worker is its own process session", async () => {
    const r = await d.pysh(["new", "work"]);
    expect(r.code).toBe(0);
    const m = /^OK work pid=(\d+)\n$/.exec(r.stdout);
    expect(m).not.toBeNull();
    const pid = Number(m![1]);
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    expect(Number(stat[3])).toBe(pid); // session id == pid: setsid, no tie to the daemon
  });
  test("an existing name is refused unless --replace", async () => {
    await d.pysh(["run", "work", "keep = 1"]);
    const r = await d.pysh(["new", "work"]);
    expect(r).toEqual({ code: 1, stdout: "", stderr: "ERR session 'work' already exists (pysh new work --replace replaces it)\n" });
    expect((await d.pysh(["run", "work", "keep"])).stdout).toBe("1\n");
    const r2 = await d.pysh(["new", "work", "--replace"]);
    expect(r2.stdout).toMatch(/^OK work pid=\d+\n$/);
    expect((await d.pysh(["run", "work", "'keep' in dir()"])).stdout).toBe("False\n");
  });
  test("extra words are refused", async () => {
    const r = await d.pysh(["new", "two", "words"]);
    expect(r.stderr).toBe(
      "ERR usage: pysh new <name> [--replace] [--python PATH] [--cwd DIR] [--idle-timeout S] (unexpected: words) -- see: pysh new --help\n",
    );
    expect(r.code).toBe(1);
  });
  test("invalid names", async () => {
    for (const bad of ["Work", "a.b", "con", "lpt1", "nul", "x".repeat(81), "a/b"]) {
      const r = await d.pysh(["new", bad]);
      expect(r).toEqual({ code: 1, stdout: "", stderr: "ERR invalid session name (lowercase a-z, 0-9, _ and -, up to 80 characters)\n" });
    }
    expect((await d.pysh(["new", "x".repeat(80)])).code).toBe(0);
    expect((await d.pysh(["kill", "x".repeat(80)])).code).toBe(0);
  });
  test("the session starts in the client's directory, with the chosen python", async () => {
    const r = await d.pysh(["new", "py", "--python", "python3"], { cwd: d.e.home });
    expect(r.code).toBe(0);
    expect((await d.pysh(["run", "py", "import os; os.getcwd()"])).stdout).toBe(`${d.e.home}\n`);
    const spaced = join(d.e.dir, "my dir");
    mkdirSync(spaced);
    expect((await d.pysh(["new", "spaced"], { cwd: spaced })).code).toBe(0);
    expect((await d.pysh(["run", "spaced", "import os; os.getcwd()"])).stdout).toBe(`${spaced}\n`);
    await d.pysh(["kill", "spaced"]);
    const bad = await d.pysh(["new", "nopy", "--python", "/nonexistent/python"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("cannot start python '/nonexistent/python'");
    expect((await d.pysh(["ls"])).stdout).not.toContain("nopy");
    await d.pysh(["kill", "py"]);
  });
});

describe("ls, status, vars, complete", () => {
  test("ls lines and (no sessions)", async () => {
    const r = await d.pysh(["ls"]);
    expect(r.stdout).toMatch(/^ {2}work: alive pid=\d+( \(pty\))?\n$/);
  });
  test("status JSON", async () => {
    const s = JSON.parse((await d.pysh(["status", "work"])).stdout);
    expect(s.state).toBe("idle");
    expect(s.running).toEqual([]);
    expect(typeof s.vars).toBe("number");
    expect(typeof s.cells).toBe("number");
  });
  test("vars: public names in insertion order", async () => {
    await d.pysh(["run", "work", "zeta = 1; alpha = 2; _hidden = 3"]);
    const pre = ["os", "sys", "json", "subprocess", "shutil", "hashlib", "time", "re", "glob", "sqlite3", "socket"];
    expect(JSON.parse((await d.pysh(["vars", "work"])).stdout)).toEqual({ vars: [...pre, "zeta", "alpha"] });
  });
  test("complete: rlcompleter semantics", async () => {
    await d.pysh(["run", "work", "import os"]);
    const m = JSON.parse((await d.pysh(["complete", "work", "os.pa"])).stdout).matches as string[];
    expect(m).toContain("os.path");
    expect(m).toContain("os.pardir");
    expect(JSON.parse((await d.pysh(["complete", "work", "alp"])).stdout)).toEqual({ matches: ["alpha"] });
  });
  test("errors exit 1 with ERR on stderr", async () => {
    for (const args of [["status", "nope"], ["vars", "nope"], ["kill", "nope"], ["status"]]) {
      const r = await d.pysh(args);
      expect(r.code).toBe(1);
      expect(r.stderr).toStartWith("ERR ");
      expect(r.stdout).toBe("");
    }
  });
});

describe("history", () => {
  test("history.py has successful cells, session.log every cell, private modes", async () => {
    await d.pysh(["new", "hist"]);
    await d.pysh(["run", "hist", "a = 1\nprint('two lines\\nout')"]);
    await d.pysh(["run", "hist", "1/0"]);
    const dir = join(d.e.home, ".pythond", "sessions", "hist");
    const hist = readFileSync(join(dir, "history.py"), "utf8");
    expect(hist).toMatch(/^\n# \[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\]\na = 1\nprint\('two lines\\nout'\)\n$/);
    const log = readFileSync(join(dir, "session.log"), "utf8");
    expect(log).toMatch(/^# \[[\d :-]+\] OK\na = 1\nprint\('two lines\\nout'\)\n# > two lines\n# > out\n# \[[\d :-]+\] ERROR\n1\/0\n/);
    expect(log).toContain("# > ZeroDivisionError: division by zero");
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, "history.py")).mode & 0o777).toBe(0o600);
  });
});

describe("kill and dead workers", () => {
  test("kill ends the worker's whole process group", async () => {
    await d.pysh(["new", "victim"]);
    const r = await d.pysh(["run", "victim", "import subprocess; p = subprocess.Popen(['sleep', '300']); p.pid"]);
    const child = Number(r.stdout.trim());
    const wpid = Number(JSON.parse((await d.pysh(["status", "victim"])).stdout).pid);
    expect(alive(child)).toBe(true);
    expect((await d.pysh(["kill", "victim"])).stdout).toBe("OK killed victim\n");
    await until(() => !alive(child) && !alive(wpid), "worker and its child to die");
    expect((await d.pysh(["ls"])).stdout).not.toContain("victim");
  });
  test("a worker that ignores SIGTERM is killed after 3 s", async () => {
    await d.pysh(["new", "stubborn"]);
    await d.pysh(["run", "stubborn", "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN)"]);
    const wpid = Number(JSON.parse((await d.pysh(["status", "stubborn"])).stdout).pid);
    expect((await d.pysh(["kill", "stubborn"])).code).toBe(0);
    await until(() => !alive(wpid), "stubborn worker to die");
  });
  for (const [how, code, reason] of [
    ["segfault", "import ctypes; ctypes.string_at(0)", "killed by SIGSEGV"],
    ["os._exit", "import os; os._exit(7)", "exited with code 7"],
    ["SIGKILL", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)", "killed by SIGKILL"],
  ] as const) {
    test(`a worker that dies (${how}) shows dead with the reason; others are unaffected`, async () => {
      const name = `die-${how.replace(/[^a-z]/gi, "").toLowerCase()}`;
      await d.pysh(["new", name]);
      const r = await d.pysh(["run", name, code]);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(`ERR session '${name}' died during the cell (${reason})\n`);
      await until(async () => (await d.pysh(["ls"])).stdout.includes(`  ${name}: dead (${reason})`), "ls to show it dead");
      const again = await d.pysh(["run", name, "1"]);
      expect(again.stderr).toContain(`session '${name}' is dead (${reason})`);
      expect((await d.pysh(["run", "work", "alpha"])).stdout).toBe("2\n");
      expect((await d.pysh(["new", name])).code).toBe(0); // the name can be reused
      await d.pysh(["kill", name]);
    });
  }
});
