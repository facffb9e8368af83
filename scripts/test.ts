/**
 * Runs every test (unit, then end-to-end against dist/pythond) with bun's runner and ends with
 * the one line CI reads: `N passed, N failed` (bun's own summary is not recognised there).
 * Test files run one after another (--max-concurrency is per file); e2e files each start their
 * own daemons on private sockets.
 */
import { join } from "node:path";

const root = join(import.meta.dir, "..");
const extra = process.argv.slice(2);
const targets = extra.length ? extra : ["test/unit", "test/e2e"];
const proc = Bun.spawn([process.execPath, "test", "--timeout", "120000", ...targets], {
  cwd: root,
  stdout: "inherit",
  stderr: "pipe",
  env: { ...process.env, NO_COLOR: "1", FORCE_COLOR: "0" },
});
let text = "";
const dec = new TextDecoder();
for await (const chunk of proc.stderr as ReadableStream<Uint8Array>) {
  const s = dec.decode(chunk, { stream: true });
  text += s;
  process.stderr.write(s);
}
const code = await proc.exited;
const passed = Number(/^\s*(\d+) pass\s*$/m.exec(text)?.[1] ?? 0);
let failed = Number(/^\s*(\d+) fail\s*$/m.exec(text)?.[1] ?? 0);
if (code !== 0 && failed === 0) failed = 1; // the runner itself failed (a file did not load, say)
console.log(`${passed} passed, ${failed} failed`);
process.exit(code === 0 && failed === 0 ? 0 : 1);
