/**
 * Reliability: clients that die mid-run. The cell must complete (a client going away is not an
 * interrupt), its output must stay retrievable by cell id, and the daemon must free the
 * connection: its fd count returns to where it was. Includes a client killed while flow control
 * holds the cell back (its output not being read), which must release the cell, and a crowd of
 * clients killed at once.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fdCount, rss } from "../fixtures/proc.ts";
import { alive, PYSH, startDaemon, until, type Daemon } from "./harness.ts";

let d: Daemon;
beforeAll(async () => {
  d = await startDaemon();
  expect((await d.pysh(["new", "work"])).code).toBe(0);
});
afterAll(async () => {
  await d?.[Symbol.asyncDispose]();
});

const py = (s: string) => JSON.stringify(s);

function spawnPysh(args: string[]) {
  return Bun.spawn([PYSH, ...args], { env: d.e.env, stdout: "pipe", stderr: "pipe" });
}

async function readUntil(stream: ReadableStream<Uint8Array>, text: string): Promise<string> {
  const reader = stream.getReader();
  let seen = "";
  while (!seen.includes(text)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`stream ended before ${JSON.stringify(text)}: ${seen}`);
    seen += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  return seen;
}

/** The running run cell (poll without an id names the latest fire/fork cell only, issue 16). */
async function latestCell(name: string): Promise<{ cell_id: string; status: string; output: string }> {
  const running = JSON.parse((await d.pysh(["status", name])).stdout).running as string[];
  return JSON.parse((await d.pysh(["poll", name, running.at(-1) ?? "000000000000"])).stdout);
}

describe("a client killed mid-run", () => {
  test("the cell completes, its output is kept, the daemon frees the connection", async () => {
    const fds = fdCount(d.pid);
    const flag = join(d.e.dir, "go-1");
    const client = spawnPysh(["run", "work", `import os, time\nprint('started', flush=True)\nwhile not os.path.exists(${py(flag)}): time.sleep(0.005)\nprint('finished')\n'value'`]);
    await readUntil(client.stdout as ReadableStream<Uint8Array>, "started");
    const cell = await latestCell("work");
    expect(cell.status).toBe("running");
    client.kill("SIGKILL");
    await client.exited;
    await until(() => fdCount(d.pid) <= fds, `daemon fds back to ${fds} (now ${fdCount(d.pid)})`);
    await Bun.write(flag, "");
    const w = await d.pysh(["wait", "work", cell.cell_id]);
    expect(w).toEqual({ code: 0, stdout: "started\nfinished\nvalue\n", stderr: "" });
    expect((await d.pysh(["run", "work", "1 + 1"])).stdout).toBe("2\n");
  });

  test("killed while flow control holds the cell back: the cell is released and completes", async () => {
    const fds = fdCount(d.pid);
    const progress = join(d.e.dir, "progress");
    const done = join(d.e.dir, "done");
    const code = `import sys\nchunk = 'y' * (1 << 20)\nfor i in range(64):\n    sys.stdout.write(chunk)\n    open(${py(progress)}, 'w').write(str(i))\nopen(${py(done)}, 'w').write('ok')\n'end'`;
    const before = rss(d.pid);
    let peak = before;
    const sample = setInterval(() => (peak = Math.max(peak, rss(d.pid))), 5);
    // Nobody reads this client's stdout: it blocks, stops reading the daemon, and the cell waits.
    const client = spawnPysh(["run", "work", code]);
    await until(() => existsSync(progress) && Number(readFileSync(progress, "utf8") || 0) >= 2, "the cell to produce output");
    expect(existsSync(done)).toBe(false);
    // Memory is sampled while flow control holds the cell back; after the kill the daemon acks and
    // drops the rest, and those dropped chunks are garbage JSC collects lazily (not held data).
    clearInterval(sample);
    const id = (await latestCell("work")).cell_id;
    client.kill("SIGKILL");
    await client.exited;
    await until(() => existsSync(done), "the cell to complete after its client died");
    // the flag file is written just before the cell's last line: wait for the cell itself
    const pollId = async () => JSON.parse((await d.pysh(["poll", "work", id])).stdout);
    await until(async () => (await pollId()).status !== "running", "the cell to end");
    const cell = await pollId();
    expect(cell.status).toBe("done");
    expect(cell.output.endsWith("yyyyend")).toBe(true);
    expect((peak - before) / 2 ** 20).toBeLessThan(32); // the daemon never held the 64 MiB
    await until(() => fdCount(d.pid) <= fds, `daemon fds back to ${fds} (now ${fdCount(d.pid)})`);
  });

  test("twenty clients killed at once: every cell still runs, no connection is left", async () => {
    const fds = fdCount(d.pid);
    const flag = join(d.e.dir, "go-crowd");
    await d.pysh(["run", "work", "order = []"]);
    const clients = Array.from({ length: 20 }, (_, i) =>
      spawnPysh(["run", "work", `import os, time\nprint('in ${i}', flush=True)\nwhile not os.path.exists(${py(flag)}): time.sleep(0.005)\norder.append(${i})`]),
    );
    // One cell runs; the others are queued for the worker, each client waiting for its turn.
    const inFlight = async () => {
      const st = JSON.parse((await d.pysh(["status", "work"])).stdout) as { running: string[]; queued: number };
      return st.running.length + st.queued >= 20;
    };
    await until(inFlight, "all 20 cells to be queued");
    for (const c of clients) c.kill("SIGKILL");
    await Promise.all(clients.map((c) => c.exited));
    for (const c of clients) expect(alive(c.pid)).toBe(false);
    await Bun.write(flag, "");
    await until(async () => (await d.pysh(["run", "work", "len(order)"])).stdout === "20\n", "all 20 cells to finish");
    expect((await d.pysh(["run", "work", "sorted(order) == list(range(20))"])).stdout).toBe("True\n");
    await until(() => fdCount(d.pid) <= fds, `daemon fds back to ${fds} (now ${fdCount(d.pid)})`);
  });
});
