/**
 * The type check: `tsc` (strict, noUncheckedIndexedAccess; tsconfig.json) over src, scripts,
 * bench and test. Bun runs TypeScript without checking it, so this is where a wrong type, a
 * duplicate import or a field read off the wrong shape is caught. tsc comes from devDependencies
 * (`npm run setup`); its errors are the failure message.
 */
import { expect, test } from "bun:test";
import { join } from "node:path";

const ROOT = join(import.meta.dir, "..", "..");

test("tsc --noEmit: no type errors in src, scripts, bench and test", async () => {
  const tsc = join(ROOT, "node_modules", "typescript", "bin", "tsc");
  const proc = Bun.spawn(["node", tsc, "--noEmit", "-p", join(ROOT, "tsconfig.json")], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  expect(out + err).toBe("");
  expect(code).toBe(0);
}, 180_000);
