// scratch: perf profiles of pysh / hub / node during a put and a get
import { join } from "node:path";
import { Hub, joinNode } from "../test/e2e/fleet-harness.ts";
import { PYSH } from "./lib.ts";
const MB = 1 << 20;
const size = Number(process.env.SIZE ?? 512) * MB;
await using hub = await Hub.start();
const node = await joinNode(hub, "n1");
const file = join(hub.d.e.dir, "blob");
const block = crypto.getRandomValues(new Uint8Array(MB));
const w = Bun.file(file).writer();
for (let i = 0; i < size / MB; i++) { block[0] = i; w.write(block); }
await w.end();
const out = process.env.OUT ?? "/tmp/xfer";
for (const dir of ["put", "get"]) {
  const perfs = [["hub", hub.d.pid], ["node", node.pid]].map(([n, pid]) => Bun.spawn(["perf", "record", "-F", "999", "-g", "-o", `${out}/${dir}-${n}.data`, "-p", String(pid)], { stdout: "ignore", stderr: "ignore" }));
  await Bun.sleep(300);
  const cmd = dir === "put" ? [PYSH, "put", "n1", file, "blob"] : [PYSH, "get", "n1", "blob", join(hub.d.e.dir, "back")];
  const t0 = performance.now();
  const p = Bun.spawn(["perf", "record", "-F", "999", "-g", "-o", `${out}/${dir}-pysh.data`, ...cmd], { env: hub.d.e.env, stdout: "ignore", stderr: "ignore" });
  await p.exited;
  console.log(dir, ((size / MB) / ((performance.now() - t0) / 1000)).toFixed(0), "MB/s");
  for (const q of perfs) q.kill("SIGINT");
  for (const q of perfs) await q.exited;
}
await node[Symbol.asyncDispose]();
