/** `pysh run`: the REPL rule, errors, code arguments, output capture, timeouts (REFERENCE "run"). */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { rss } from "../fixtures/proc.ts";
import { join } from "node:path";
import { PYSH, rawClient, startDaemon, type Daemon } from "./harness.ts";

let d: Daemon;
beforeAll(async () => {
  d = await startDaemon();
  expect((await d.pysh(["new", "work"])).code).toBe(0);
});
afterAll(async () => {
  await d?.[Symbol.asyncDispose]();
});

const run = (...code: string[]) => d.pysh(["run", "work", ...code]);

describe("REPL rule", () => {
  test("assignment prints nothing, expression prints its value", async () => {
    expect(await run("x = 42")).toEqual({ code: 0, stdout: "", stderr: "" });
    expect((await run("x + 1")).stdout).toBe("43\n");
  });
  test("statements then the last expression", async () => {
    expect((await run("print('a'); 1+1")).stdout).toBe("a\n2\n");
  });
  test("str raw, others repr, None nothing", async () => {
    expect((await run("'hi'")).stdout).toBe("hi\n");
    expect((await run("['hi']")).stdout).toBe("['hi']\n");
    expect((await run("None")).stdout).toBe("");
  });
  test("_ is the last value", async () => {
    await run("6 * 7");
    expect((await run("_ + 1")).stdout).toBe("43\n");
  });
  test("trailing newlines are stripped", async () => {
    expect((await run("print('a\\n\\n\\n')")).stdout).toBe("a\n");
  });
  test("top-level await", async () => {
    expect((await run("import asyncio\nawait asyncio.sleep(0)\n5")).stdout).toBe("5\n");
  });
});

describe("errors", () => {
  test("exception: user frames only on stderr, exit 1", async () => {
    const r = await run("def f():\n    return 1/0\nf()");
    expect(r.code).toBe(1);
    expect(r.stderr).toStartWith("ERR execution failed\nTraceback (most recent call last):\n");
    expect(r.stderr).toContain("ZeroDivisionError: division by zero");
    expect(r.stderr).toContain("in f");
    expect(r.stderr).not.toContain("_pythond");
    expect(r.stderr).not.toContain("bootstrap");
  });
  test("output before the exception still arrives", async () => {
    const r = await run("print('before'); raise ValueError('boom')");
    expect(r.stdout).toBe("before\n");
    expect(r.stderr).toContain("ValueError: boom");
  });
  test("syntax error", async () => {
    const r = await run("def (:");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("SyntaxError");
  });
  test("sys.exit(3) exits 3 (as python -c), SystemExit('msg') 1, sys.exit(0) 0; the session lives", async () => {
    const r = await run("import sys; sys.exit(3)");
    expect(r).toEqual({ code: 3, stdout: "", stderr: "ERR execution failed\nexit(3)\n" });
    expect(await run("raise SystemExit('bye')")).toEqual({ code: 1, stdout: "", stderr: "ERR execution failed\nexit(bye)\n" });
    expect(await run("print('x'); sys.exit()")).toEqual({ code: 0, stdout: "x\n", stderr: "" });
    expect((await run("1")).stdout).toBe("1\n");
  });
  test("missing session", async () => {
    const r = await d.pysh(["run", "nope", "1"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("ERR no session 'nope' -- create it first with: pysh new nope\n");
  });
  test("input() fails at once with a clear message", async () => {
    const r = await run("input('name? ')");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("input() is not available in an agent cell");
    const r2 = await run("import sys; sys.stdin.readline()");
    expect(r2.stderr).toContain("input() is not available in an agent cell");
  });
});

describe("code arguments", () => {
  test("several words are joined with spaces", async () => {
    expect((await d.pysh(["run", "work", "print(", "'a',", "'b')"])).stdout).toBe("a b\n");
  });
  test("code that begins with -", async () => {
    expect((await d.pysh(["run", "work", "-1", "+", "2"])).stdout).toBe("1\n");
  });
  test("@file and - (stdin)", async () => {
    const f = join(d.e.dir, "task.py");
    writeFileSync(f, "name = 'file'\nprint(f\"from {name}: {'quotes'!r}\")\n");
    expect((await d.pysh(["run", "work", `@${f}`])).stdout).toBe("from file: 'quotes'\n");
    expect((await d.pysh(["run", "work", "-"], { stdin: "print('from stdin')" })).stdout).toBe("from stdin\n");
    const missing = await d.pysh(["run", "work", "@/nonexistent/x.py"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("cannot read /nonexistent/x.py");
  });
  test("64 MiB of code through stdin", async () => {
    const code = "s = '" + "a".repeat(64 * 1024 * 1024 - 20) + "'\nlen(s)";
    const r = await d.pysh(["run", "work", "-"], { stdin: code });
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe(`${64 * 1024 * 1024 - 20}\n`);
    await run("del s");
  });
});

describe("output capture", () => {
  test("subprocess and C-level output, in order with print", async () => {
    const r = await run("import os, subprocess\nprint('a')\nos.system('echo b')\nprint('c')\nsubprocess.run(['echo', 'd'])\nprint('e', flush=False)");
    expect(r.stdout).toBe("a\nb\nc\nd\ne\n");
  });
  test("the order holds while the capture thread drains the pipe at the same moment (100 cells)", async () => {
    // A subprocess's bytes wake the capture thread, which may have read them and not yet passed
    // them on when the next print() looks at the pipe: that print must wait for them.
    const c = await rawClient(d.e.sock);
    const cell = "run work\nimport os, subprocess\nprint('a')\nos.system('echo b')\nprint('c')\nsubprocess.run(['echo', 'd'])\nprint('e')";
    const wrong: string[] = [];
    for (let i = 0; i < 100; i++) {
      const out = await c.ask(cell);
      if (out !== "a\nb\nc\nd\ne") wrong.push(out);
    }
    c.close();
    expect(wrong).toEqual([]);
  });
  test("stderr is captured too", async () => {
    const r = await run("import sys; print('out'); print('err', file=sys.stderr)");
    expect(r.stdout).toBe("out\nerr\n");
  });
  test("a thread started by the cell writes into the cell", async () => {
    const r = await run("import threading\nt = threading.Thread(target=lambda: print('from thread'))\nt.start(); t.join()");
    expect(r.stdout).toBe("from thread\n");
  });
  test("100 MB of output streams through with bounded daemon memory", async () => {
    const r = await d.pysh(["run", "work", "import sys\nfor _ in range(100): sys.stdout.write('x' * 1_000_000)"]);
    expect(r.code).toBe(0);
    expect(r.stdout.length).toBe(100_000_001);
    // Steady state after a warm-up: further 100 MB streams must not add up in the daemon.
    const before = rss(d.pid);
    for (const code of ["import sys; sys.stdout.write('y' * 100_000_000)", "for i in range(300_000): print('z' * 40)"]) {
      const big = Bun.spawn([PYSH, "run", "work", code], { env: d.e.env, stdout: "ignore" });
      expect(await big.exited).toBe(0);
    }
    // 200 MB streamed: unbounded buffering would show as >= 100 MB here (bench/ measures the 32 MB target).
    expect(rss(d.pid) - before).toBeLessThan(64 * 1024 * 1024);
  });
  test("non-UTF-8 bytes from a subprocess pass through raw", async () => {
    const p = Bun.spawn([join(import.meta.dir, "../../dist/pysh"), "run", "work", "import os; _r = os.system(\"printf '\\\\377ok'\")"], {
      env: d.e.env,
      stdout: "pipe",
    });
    const bytes = new Uint8Array(await new Response(p.stdout).arrayBuffer());
    expect(Array.from(bytes)).toEqual([0xff, 0x6f, 0x6b, 0x0a]);
  });
});

describe("timeout", () => {
  test("--timeout interrupts the cell, reports it, and the session stays healthy", async () => {
    await run("y = 7");
    const r = await d.pysh(["run", "work", "--timeout", "0.5", "import time; time.sleep(60)"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("KeyboardInterrupt");
    expect(r.stderr).toContain("interrupted after --timeout 0.5s");
    expect((await run("y")).stdout).toBe("7\n");
  });
});
