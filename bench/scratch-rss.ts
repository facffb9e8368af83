// scratch: RSS of hub and node over repeated transfers (not committed)
import { rmSync } from "node:fs";
import { join } from "node:path";
import { Hub, joinNode } from "../test/e2e/fleet-harness.ts";
import { PYSH, MB, rss } from "./lib.ts";
await using hub = await Hub.start();
const node = await joinNode(hub, "n1");
const env = hub.d.e.env;
const file = join(hub.d.e.dir, "blob");
const block = crypto.getRandomValues(new Uint8Array(MB));
const w = Bun.file(file).writer();
for (let i = 0; i < 512; i++) { block[0] = i & 0xff; w.write(block); }
await w.end();
const back = join(hub.d.e.dir, "back");
console.log("start", (rss(hub.d.pid) / MB).toFixed(0), (rss(node.pid) / MB).toFixed(0));
for (let i = 0; i < 8; i++) {
  for (const dir of ["put", "get"]) {
    let peakH = 0, peakN = 0;
    const t = setInterval(() => { peakH = Math.max(peakH, rss(hub.d.pid)); peakN = Math.max(peakN, rss(node.pid)); }, 20);
    const p = Bun.spawn(dir === "put" ? [PYSH, "put", "n1", file, "blob"] : [PYSH, "get", "n1", "blob", back], { env, stdout: "ignore", stderr: "inherit" });
    await p.exited; clearInterval(t);
    console.log(i, dir, "peak hub", (peakH / MB).toFixed(0), "node", (peakN / MB).toFixed(0), "after", (rss(hub.d.pid) / MB).toFixed(0), (rss(node.pid) / MB).toFixed(0));
    rmSync(back, { force: true });
  }
}
