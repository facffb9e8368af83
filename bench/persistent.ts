/**
 * 2. Persistent connection: `x + 1` cells one after another over one WebSocket, for both
 * subprotocols (pythond.1 streams CELL / output / OK; pythond.0.4 answers once), plus a pipelined
 * run (many cells in flight on the connection) for throughput.
 *
 * Baselines, measured in the same run and in turns with the figures (interleaved): the same Bun
 * client talking to a minimal Python process that evaluates the same cell (`eval(code, ns)`, repr
 * of the value) over a Unix socketpair, the cost of a round trip to any Python at all (the floor,
 * bench/floor.ts); the same evaluator behind a do-nothing relay process, what any router between
 * client and Python costs; the session's worker asked directly, with no daemon in between, what
 * the worker's own per-cell work costs. And, where installed, a Jupyter kernel via jupyter_client
 * (execute request until the execute_reply has come and iopub reports idle, after the execute_result).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { workerRecordsDir } from "../src/paths.ts";
import { WorkerLink } from "../src/worker/link.ts";
import { cpuSeconds } from "../test/fixtures/proc.ts";
import { startFloor } from "./floor.ts";
import { fmtUs, pct, spareSettled, ratio, sorted, standalone, startDaemon, WsClient, type BenchOptions, type BenchResult, type Row } from "./lib.ts";

const CELL = "x + 1";

interface Lat {
  p50: number;
  p99: number;
  perSec: number;
  /** CPU per cell (ms, like the latencies) of the processes involved, when measured. */
  cpu?: Record<string, number>;
}

function summarise(ms: number[], totalMs: number): Lat {
  const s = sorted(ms);
  return { p50: pct(s, 50), p99: pct(s, 99), perSec: (ms.length / totalMs) * 1000 };
}

/** One way of getting the cell's answer: a round trip (it throws on a wrong answer), and the processes whose CPU it spends. */
interface Contender {
  once(): Promise<void>;
  pids: Record<string, number>;
}

/**
 * Runs the contenders in turns of `block` cells until each has run n (after a warm-up of 500
 * each), so that every figure and its baselines go through the same phases of this shared
 * machine: measured one after another, a figure and its baseline can be 1.5x apart from the
 * machine alone. Per contender: latencies, cells/s, and CPU per cell of its processes (/proc)
 * and of this process ("client").
 */
async function interleaved(cs: Contender[], n: number, block = 250): Promise<Lat[]> {
  for (const c of cs) for (let i = 0; i < 500; i++) await c.once();
  const acc = cs.map(() => ({ lat: [] as number[], wall: 0, client: 0, cpu: {} as Record<string, number> }));
  for (let done = 0; done < n; done += block) {
    const m = Math.min(block, n - done);
    for (const [k, c] of cs.entries()) {
      const a = acc[k]!;
      const before = Object.entries(c.pids).map(([name, pid]) => [name, pid, cpuSeconds(pid)] as const);
      const self = process.cpuUsage();
      const t0 = performance.now();
      for (let i = 0; i < m; i++) {
        const t = performance.now();
        await c.once();
        a.lat.push(performance.now() - t);
      }
      a.wall += performance.now() - t0;
      const used = process.cpuUsage(self);
      a.client += (used.user + used.system) / 1000;
      for (const [name, pid, s] of before) a.cpu[name] = (a.cpu[name] ?? 0) + (cpuSeconds(pid) - s) * 1000;
    }
  }
  return acc.map((a) => {
    const cpu: Record<string, number> = { client: a.client / n };
    for (const [name, ms] of Object.entries(a.cpu)) cpu[name] = ms / n;
    return { ...summarise(a.lat, a.wall), cpu };
  });
}

/** A WebSocket client asking `frame` (or frame(): a new cell text each time) and expecting `expect` as the final frame. */
function wsContender(c: WsClient, frame: string | (() => string), expect: string, pids: Record<string, number>): Contender {
  return {
    pids,
    async once() {
      const r = await c.ask(typeof frame === "string" ? frame : frame());
      if (r.final !== expect) throw new Error(`unexpected reply ${JSON.stringify(r)}`);
    },
  };
}

/** Keeps `window` cells in flight on one connection; returns cells/s. */
async function pipelined(c: WsClient, frame: string, n: number, window: number, finals: (m: string) => boolean): Promise<number> {
  const t0 = performance.now();
  let sent = 0;
  let done = 0;
  for (; sent < Math.min(window, n); sent++) c.send(frame);
  while (done < n) {
    const m = await c.next();
    if (typeof m !== "string" || !finals(m)) continue;
    done++;
    if (sent < n) {
      c.send(frame);
      sent++;
    }
  }
  return (n / (performance.now() - t0)) * 1000;
}

/** The minimal Python evaluator (bench/floor.ts), asked from this process. */
async function floorContender(): Promise<Contender & { close(): Promise<void> }> {
  let wake: ((b: Uint8Array) => void) | undefined;
  const ev = await startFloor((a) => wake?.(a));
  return {
    pids: { python: ev.pid },
    async once() {
      const r = await new Promise<Uint8Array>((resolve) => {
        wake = resolve;
        ev.send(CELL);
      });
      if (r.length !== 2) throw new Error("floor evaluator answered wrongly");
    },
    close: () => ev.end(),
  };
}

/**
 * The same evaluator behind a do-nothing relay process (bench/floor.ts run as a script): a Bun
 * WebSocket server that forwards each cell and each answer. The least a design with a router
 * process between client and Python can cost, measured with the client pythond's figures use.
 */
async function relayContender(): Promise<Contender & { close(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), "pyd-relay-"));
  const sock = join(dir, "relay.sock");
  const relay = Bun.spawn([process.execPath, join(import.meta.dir, "floor.ts"), sock], { stdout: "pipe", stderr: "inherit" });
  const close = async () => {
    relay.kill();
    await relay.exited;
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const reader = relay.stdout.getReader();
    const first = await reader.read();
    if (!new TextDecoder().decode(first.value).includes("ready")) throw new Error("the relay did not start");
    reader.releaseLock();
    const c = await WsClient.connect(sock, []);
    return {
      ...wsContender(c, CELL, "42", { relay: relay.pid }),
      async close() {
        c.close();
        await close();
      },
    };
  } catch (e) {
    await close();
    throw e;
  }
}

/**
 * The session's worker with no daemon in between: this process speaks the worker protocol on a
 * run lane of its own (the daemon's WorkerLink, the secret from the session's record), so a cell
 * costs one hop, as the floor's does, plus everything the worker does for a cell (capture, the
 * cell record, history). What the worker alone costs, beside what the daemon adds.
 */
async function workerAloneContender(sock: string, session: string): Promise<Contender & { close(): void }> {
  const rec = JSON.parse(readFileSync(join(workerRecordsDir(sock), `${session}.json`), "utf8")) as { sock: string; secret: string; pid: number };
  const link = await WorkerLink.connect(rec.sock, rec.secret);
  const dec = new TextDecoder();
  return {
    pids: { worker: rec.pid },
    async once() {
      const out = await new Promise<string>((resolve, reject) => {
        let text = "";
        link.run(CELL, undefined, {
          start() {},
          out: (b) => (text += dec.decode(b)),
          end: (h) => (h.ok ? resolve(text) : reject(new Error(`worker: ${String(h.error)}`))),
          lost: (why) => reject(new Error(`worker lost: ${why}`)),
        });
      });
      if (out !== "42\n") throw new Error(`the worker answered ${JSON.stringify(out)}`);
    },
    close: () => link.close(),
  };
}

const JUPYTER_PY = `
import json, os, sys, tempfile, time
from jupyter_client import KernelManager
d = tempfile.mkdtemp()
spec = os.path.join(d, "kernels", "pybench")
os.makedirs(spec)
json.dump({"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
           "display_name": "bench", "language": "python"}, open(os.path.join(spec, "kernel.json"), "w"))
os.environ["JUPYTER_PATH"] = d
km = KernelManager(kernel_name="pybench")
km.start_kernel()
kc = km.client()
kc.start_channels()
kc.wait_for_ready(timeout=60)
def cell(code):
    # Done when the shell reply has come and iopub said idle (after any execute_result).
    mid = kc.execute(code)
    got_reply = idle = False
    while not got_reply:
        m = kc.get_shell_msg(timeout=10)
        got_reply = m["parent_header"].get("msg_id") == mid
    while not idle:
        m = kc.get_iopub_msg(timeout=10)
        idle = (m["parent_header"].get("msg_id") == mid and m["msg_type"] == "status"
                and m["content"]["execution_state"] == "idle")
cell("x = 41")
n = int(sys.argv[1])
for _ in range(50): cell("x + 1")
lat = []
t0 = time.perf_counter()
for _ in range(n):
    a = time.perf_counter(); cell("x + 1"); lat.append((time.perf_counter() - a) * 1000)
total = (time.perf_counter() - t0) * 1000
kc.stop_channels(); km.shutdown_kernel(now=True)
print(json.dumps({"lat": lat, "total": total}))
`;

/** A Jupyter kernel through jupyter_client, with the system python that has it; null if absent. */
async function jupyter(n: number): Promise<Lat | string> {
  const pythons = ["/usr/bin/python3", "python3"].filter((p) => p === "python3" || existsSync(p));
  for (const py of pythons) {
    const ok = Bun.spawnSync([py, "-c", "import jupyter_client, ipykernel"], { stderr: "pipe" }).exitCode === 0;
    if (!ok) continue;
    const dir = mkdtempSync(join(tmpdir(), "pyd-jup-"));
    try {
      const script = join(dir, "jup.py");
      writeFileSync(script, JUPYTER_PY);
      const p = Bun.spawn([py, script, String(n)], { stdout: "pipe", stderr: "pipe", env: { ...process.env, HOME: dir } });
      const killer = setTimeout(() => p.kill("SIGKILL"), 120_000);
      const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
      clearTimeout(killer);
      if ((await p.exited) !== 0) return `jupyter kernel failed: ${err.trim().split("\n").pop()}`;
      const r = JSON.parse(out) as { lat: number[]; total: number };
      return summarise(r.lat, r.total);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return "jupyter_client/ipykernel not installed (Debian: apt-get install python3-ipykernel python3-jupyter-client)";
}

export async function benchPersistent(o: BenchOptions): Promise<BenchResult> {
  const n = Math.max(500, Math.round(5000 * o.scale));
  await using d = await startDaemon();
  await d.pysh(["new", "bench"]);
  await d.pysh(["run", "bench", "x = 41"]);
  await spareSettled(d);
  const frame = `run bench\n${CELL}`;

  const v1 = await WsClient.connect(d.e.sock, ["pythond.1"]);
  const v0 = await WsClient.connect(d.e.sock, ["pythond.0.4"]);
  const vFresh = await WsClient.connect(d.e.sock, ["pythond.1"]);
  const fl = await floorContender();
  const relay = await relayContender();
  const alone = await workerAloneContender(d.e.sock, "bench");
  const procs = { daemon: d.pid, worker: d.workerPids()[0]! };
  let fresh = 0; // every cell text new (a comment with a counter): what a cell costs when it must be compiled
  let lats: Lat[];
  try {
    lats = await interleaved(
      [
        wsContender(v1, frame, "OK", procs),
        wsContender(v0, frame, "42", procs),
        wsContender(vFresh, () => `${frame}  # ${fresh++}`, "OK", procs),
        alone,
        fl,
        relay,
      ],
      n,
    );
  } finally {
    alone.close();
    await fl.close();
    await relay.close();
    vFresh.close();
  }
  const v1Final = (m: string) => m === "OK" || m.startsWith("ERR");
  await pipelined(v1, frame, 1000, 32, v1Final); // warm-up, as for the one-at-a-time figures
  const piped = await pipelined(v1, frame, n, 32, v1Final);
  await pipelined(v0, frame, 1000, 32, () => true);
  const pipedLegacy = await pipelined(v0, frame, n, 32, () => true);
  v1.close();
  v0.close();
  const [ours, legacy, freshLat, aloneLat, floorLat, relayLat] = lats as [Lat, Lat, Lat, Lat, Lat, Lat];

  const jn = Math.max(100, Math.round(500 * o.scale));
  const jup = await jupyter(jn);

  const rows: Row[] = [
    { figure: "pythond.1 p50", value: fmtUs(ours.p50), baseline: `floor ${fmtUs(floorLat.p50)}`, ratio: ratio(ours.p50, floorLat.p50), target: "<= 2x floor", met: ours.p50 <= 2 * floorLat.p50 },
    { figure: "pythond.1 p99", value: fmtUs(ours.p99), baseline: `floor ${fmtUs(floorLat.p99)}`, ratio: ratio(ours.p99, floorLat.p99) },
    { figure: "pythond.1 cells/s, one at a time", value: ours.perSec.toFixed(0), baseline: `floor ${floorLat.perSec.toFixed(0)}`, ratio: ratio(ours.perSec, floorLat.perSec), target: ">= 10000", met: ours.perSec >= 10_000 },
    { figure: "pythond.1 cells/s, 32 in flight", value: piped.toFixed(0), baseline: `floor ${floorLat.perSec.toFixed(0)}`, ratio: ratio(piped, floorLat.perSec), target: ">= 10000", met: piped >= 10_000 },
    { figure: "do-nothing relay process in between: p50", value: fmtUs(relayLat.p50), baseline: `floor ${fmtUs(floorLat.p50)}`, ratio: ratio(relayLat.p50, floorLat.p50) },
    { figure: "pythond.1 p50 vs the do-nothing relay", value: fmtUs(ours.p50), baseline: `relay ${fmtUs(relayLat.p50)}`, ratio: ratio(ours.p50, relayLat.p50) },
    { figure: "the worker alone, no daemon: p50", value: fmtUs(aloneLat.p50), baseline: `floor ${fmtUs(floorLat.p50)}`, ratio: ratio(aloneLat.p50, floorLat.p50) },
    { figure: "pythond.1 p50 vs the worker alone", value: fmtUs(ours.p50), baseline: `worker alone ${fmtUs(aloneLat.p50)}`, ratio: ratio(ours.p50, aloneLat.p50) },
    { figure: "pythond.1 p50, new cell text each time", value: fmtUs(freshLat.p50), baseline: `floor ${fmtUs(floorLat.p50)}`, ratio: ratio(freshLat.p50, floorLat.p50) },
    { figure: "pythond.0.4 p50", value: fmtUs(legacy.p50), baseline: `floor ${fmtUs(floorLat.p50)}`, ratio: ratio(legacy.p50, floorLat.p50), target: "<= 2x floor", met: legacy.p50 <= 2 * floorLat.p50 },
    { figure: "pythond.0.4 p99", value: fmtUs(legacy.p99), baseline: `floor ${fmtUs(floorLat.p99)}`, ratio: ratio(legacy.p99, floorLat.p99) },
    { figure: "pythond.0.4 cells/s, one at a time", value: legacy.perSec.toFixed(0), baseline: `floor ${floorLat.perSec.toFixed(0)}`, ratio: ratio(legacy.perSec, floorLat.perSec), target: ">= 10000", met: legacy.perSec >= 10_000 },
    { figure: "pythond.0.4 cells/s, 32 in flight", value: pipedLegacy.toFixed(0), baseline: `floor ${floorLat.perSec.toFixed(0)}`, ratio: ratio(pipedLegacy, floorLat.perSec) },
  ];
  const c = ours.cpu!;
  const f = floorLat.cpu!;
  rows.push(
    { figure: "CPU per cell: worker (python)", value: fmtUs(c.worker!), baseline: `floor python ${fmtUs(f.python!)}`, ratio: ratio(c.worker!, f.python!) },
    { figure: "CPU per cell: the worker alone, no daemon", value: fmtUs(aloneLat.cpu!.worker!), baseline: `floor python ${fmtUs(f.python!)}`, ratio: ratio(aloneLat.cpu!.worker!, f.python!) },
    { figure: "CPU per cell: daemon", value: fmtUs(c.daemon!), baseline: `do-nothing relay ${fmtUs(relayLat.cpu!.relay!)}`, ratio: ratio(c.daemon!, relayLat.cpu!.relay!) },
    { figure: "CPU per cell: client", value: fmtUs(c.client!), baseline: `floor client ${fmtUs(f.client!)}`, ratio: ratio(c.client!, f.client!) },
  );
  const notes = [
    `${n} cells per figure after 500 warm-up cells each (1000 pipelined before the pipelined figures); client, daemon and worker share the 2 cores`,
    "one-at-a-time figures and their baselines are measured in turns of 250 cells each (pythond.1, pythond.0.4, new text, worker alone, floor, relay), so all see the same phases of the machine; the pipelined figures come after",
    "CPU per cell: user + system time from /proc over each figure's own turns (10 ms ticks), all threads",
    "do-nothing relay: bench/floor.ts as a process between this client and the same evaluator (a Bun WebSocket server on a Unix socket that forwards cells and answers and does nothing else): the least any design with a router process between client and Python costs",
    "the worker alone: this client on a run lane of the session's worker (the daemon's own worker-link code, no daemon process in between): one hop, like the floor, plus the worker's per-cell work (output capture, the cell record, history.py and session.log). With a router process in between, a cell costs at least this plus the relay's extra hop (relay minus floor)",
    "the worker reuses the compiled code of a cell text it has seen (execute.py); the floor compiles every time (eval of a string); 'new cell text each time' sends `x + 1  # <counter>`, compiled every time",
  ];
  if (typeof jup === "string") notes.push(`Jupyter: skipped: ${jup}`);
  else {
    rows.push(
      { figure: "pythond.1 p50 vs Jupyter", value: fmtUs(ours.p50), baseline: `jupyter ${fmtUs(jup.p50)}`, ratio: ratio(ours.p50, jup.p50) },
      { figure: "pythond.1 p99 vs Jupyter", value: fmtUs(ours.p99), baseline: `jupyter ${fmtUs(jup.p99)}`, ratio: ratio(ours.p99, jup.p99) },
      { figure: "cells/s vs Jupyter", value: ours.perSec.toFixed(0), baseline: `jupyter ${jup.perSec.toFixed(0)}`, ratio: ratio(ours.perSec, jup.perSec) },
    );
    notes.push(`Jupyter: ipykernel via jupyter_client (system python3), ${jn} cells, each until execute_reply and iopub idle (after execute_result)`);
  }
  return { id: "persistent", title: "2. Persistent connection: x + 1 over one WebSocket", rows, notes };
}

if (import.meta.main) await standalone(benchPersistent);
