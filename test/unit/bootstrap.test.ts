/** The bootstrap's execution rules, run in a real python3 against the embedded package. */
import { expect, test } from "bun:test";
import { join } from "node:path";

/** Runs one of the Python check scripts beside this file against src/worker/py. */
async function pythonChecks(script: string) {
  const p = Bun.spawn(["python3", join(import.meta.dir, script)], { stdout: "pipe", stderr: "pipe", cwd: join(import.meta.dir, "../../src/worker/py"), env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1" } });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  expect(err).toBe("");
  expect(out.trim().split("\n").at(-1)).toMatch(/^ok \d+ checks$/);
  expect(code).toBe(0);
}

test("execute(): REPL rule, _, SystemExit, user-only tracebacks, top-level await", () => pythonChecks("execute_rules.py"));

test("worker framing: whole frames where they lie, split frames, bad headers refused", () => pythonChecks("wire_frames.py"));

test("cells kept for poll: evicted in the order they ended, running ones never; count, bytes, age", () => pythonChecks("cells_eviction.py"));
