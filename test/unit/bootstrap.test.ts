/** The bootstrap's execution rules, run in a real python3 against the embedded package. */
import { expect, test } from "bun:test";
import { join } from "node:path";

test("execute(): REPL rule, _, SystemExit, user-only tracebacks, top-level await", async () => {
  const py = join(import.meta.dir, "execute_rules.py");
  const p = Bun.spawn(["python3", py], { stdout: "pipe", stderr: "pipe", cwd: join(import.meta.dir, "../../src/worker/py") });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  expect(err).toBe("");
  expect(out.trim().split("\n").at(-1)).toMatch(/^ok \d+ checks$/);
  expect(code).toBe(0);
});
