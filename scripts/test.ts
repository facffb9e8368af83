/**
 * Runs every test (unit, then end-to-end against dist/pythond) with bun's runner, then the Python
 * library's tests with pytest (clients/python/tests, against the same binary), and ends with the
 * one line CI reads: `N passed, N failed` (both runners' counts added; bun's own summary is not
 * recognised there). Test files run one after another (--max-concurrency is per file); e2e files
 * each start their own daemons on private sockets. The Python environment (websockets, pytest,
 * matplotlib) is made once by scripts/pyenv.ts; bun tests get its interpreter as
 * PYTHOND_TEST_PYTHON (the MCP figure test's sessions use it).
 * Targets: `bun scripts/test.ts test/e2e/x.test.ts` runs bun on those; `clients/python` (or a
 * path under it) runs pytest on it.
 */
import { join } from "node:path";
import { ensurePyenv } from "./pyenv.ts";

const root = join(import.meta.dir, "..");
const extra = process.argv.slice(2);
const pyTargets = extra.length ? extra.filter((t) => t.startsWith("clients/python")) : ["clients/python/tests"];
const bunTargets = extra.length ? extra.filter((t) => !t.startsWith("clients/python")) : ["test/unit", "test/e2e"];

let passed = 0;
let failed = 0;
let python: string | undefined;
try {
  python = ensurePyenv();
} catch (e) {
  console.error((e as Error).message);
  failed++; // counted once; the tests that need it fail on their own too
}

/** Runs a test runner, echoing its output, and returns what it printed on `which` and its exit code. */
async function runner(cmd: string[], env: Record<string, string>, which: "stdout" | "stderr", limitMs?: number): Promise<{ text: string; code: number }> {
  const proc = Bun.spawn(cmd, {
    cwd: root,
    stdout: which === "stdout" ? "pipe" : "inherit",
    stderr: which === "stderr" ? "pipe" : "inherit",
    env: { ...process.env, NO_COLOR: "1", FORCE_COLOR: "0", ...env },
  });
  // A hung run must fail CI rather than stall it (pytest has no per-test time limit of its own;
  // faulthandler_timeout below prints where it hung first).
  const limit = limitMs
    ? setTimeout(() => {
        process.stderr.write(`\n${cmd.join(" ")}: no end after ${limitMs / 1000} s; killed, counted as a failure\n`);
        proc.kill("SIGKILL");
      }, limitMs)
    : undefined;
  void proc.exited.then(() => clearTimeout(limit));
  let text = "";
  const dec = new TextDecoder();
  for await (const chunk of proc[which] as ReadableStream<Uint8Array>) {
    const s = dec.decode(chunk, { stream: true });
    text += s;
    (which === "stdout" ? process.stdout : process.stderr).write(s);
  }
  return { text, code: await proc.exited };
}

if (bunTargets.length) {
  const env: Record<string, string> = python ? { PYTHOND_TEST_PYTHON: python } : {};
  const { text, code } = await runner([process.execPath, "test", "--timeout", "120000", ...bunTargets], env, "stderr");
  passed += Number(/^\s*(\d+) pass\s*$/m.exec(text)?.[1] ?? 0);
  const f = Number(/^\s*(\d+) fail\s*$/m.exec(text)?.[1] ?? 0);
  failed += f;
  if (code !== 0 && f === 0) failed++; // the runner itself failed (a file did not load, say)
}

if (pyTargets.length && python) {
  const env = {
    PYTHONPATH: join(root, "clients", "python", "src"),
    PYTHONDONTWRITEBYTECODE: "1",
    PYTHOND_BIN: join(root, "dist", "pythond"),
  };
  const { text, code } = await runner([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "faulthandler_timeout=240", ...pyTargets], env, "stdout", 15 * 60_000);
  const last = text.trim().split("\n").pop() ?? "";
  passed += Number(/(\d+) passed/.exec(last)?.[1] ?? 0);
  const f = Number(/(\d+) failed/.exec(last)?.[1] ?? 0) + Number(/(\d+) errors?/.exec(last)?.[1] ?? 0);
  failed += f;
  if (code !== 0 && f === 0) failed++; // collection failed, or no tests ran (pytest's exit 5)
}

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
