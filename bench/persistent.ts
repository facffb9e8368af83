/**
 * 2. Persistent connection: `x + 1` cells one after another over one WebSocket, for both
 * subprotocols (pythond.1 streams CELL / output / OK; pythond.0.4 answers once), plus a pipelined
 * run (many cells in flight on the connection) for throughput.
 *
 * Floor, measured in the same run: the same Bun client talking to a minimal Python process that
 * evaluates the same cell (`eval(code, ns)`, repr of the value) over a Unix socketpair: the cost
 * of a round trip to any Python at all (bench/floor.ts). The same evaluator behind a do-nothing
 * relay process: what any router between client and Python costs. And, where installed, a Jupyter kernel via jupyter_client
 * (execute request until the execute_reply has come and iopub reports idle, after the execute_result).
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
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

/** Runs fn (n cells) and adds the CPU each process spent per cell: /proc for pids, this process for "client". */
async function withCpu(pids: Record<string, number>, n: number, fn: () => Promise<Lat>): Promise<Lat> {
  const before = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuSeconds(pid)]));
  const self = process.cpuUsage();
  const lat = await fn();
  const used = process.cpuUsage(self);
  const cpu: Record<string, number> = { client: (used.user + used.system) / 1000 / n };
  for (const [k, pid] of Object.entries(pids)) cpu[k] = ((cpuSeconds(pid) - before[k]!) * 1000) / n;
  return { ...lat, cpu };
}

function summarise(ms: number[], totalMs: number): Lat {
  const s = sorted(ms);
  return { p50: pct(s, 50), p99: pct(s, 99), perSec: (ms.length / totalMs) * 1000 };
}

/** `frame` is the same every time, or made per cell (i) to defeat the worker's compile cache. */
async function sequential(c: WsClient, frame: string | ((i: number) => string), n: number, expectOut: string): Promise<Lat> {
  const lat: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const f = typeof frame === "string" ? frame : frame(i);
    const a = performance.now();
    const r = await c.ask(f);
    lat.push(performance.now() - a);
    if (r.final !== "OK" && r.final !== expectOut) throw new Error(`unexpected reply ${JSON.stringify(r)}`);
  }
  return summarise(lat, performance.now() - t0);
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

/** Round trips to the minimal Python evaluator (bench/floor.ts) from this process. */
async function floor(n: number): Promise<Lat> {
  let wake: ((b: Uint8Array) => void) | undefined;
  const ev = await startFloor((a) => wake?.(a));
  const once = () =>
    new Promise<Uint8Array>((resolve) => {
      wake = resolve;
      ev.send(CELL);
    });
  for (let i = 0; i < 200; i++) await once();
  const res = await withCpu({ python: ev.pid }, n, async () => {
    const lat: number[] = [];
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      const a = performance.now();
      const r = await once();
      lat.push(performance.now() - a);
      if (r.length !== 2) throw new Error("floor evaluator answered wrongly");
    }
    return summarise(lat, performance.now() - t0);
  });
  await ev.end();
  return res;
}

/**
 * The same evaluator behind a do-nothing relay process (bench/floor.ts run as a script): a Bun
 * WebSocket server that forwards each cell and each answer. The least a design with a router
 * process between client and Python can cost, measured with the client pythond's figures use.
 */
async function relayFloor(n: number): Promise<Lat> {
  const dir = mkdtempSync(join(tmpdir(), "pyd-relay-"));
  const sock = join(dir, "relay.sock");
  const relay = Bun.spawn([process.execPath, join(import.meta.dir, "floor.ts"), sock], { stdout: "pipe", stderr: "inherit" });
  try {
    const reader = relay.stdout.getReader();
    const first = await reader.read();
    if (!new TextDecoder().decode(first.value).includes("ready")) throw new Error("the relay did not start");
    reader.releaseLock();
    const c = await WsClient.connect(sock, []);
    await sequential(c, CELL, 500, "42");
    const res = await withCpu({ relay: relay.pid }, n, () => sequential(c, CELL, n, "42"));
    c.close();
    return res;
  } finally {
    relay.kill();
    await relay.exited;
    rmSync(dir, { recursive: true, force: true });
  }
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
  await sequential(v1, frame, 500, "42");
  const ours = await withCpu({ daemon: d.pid, worker: d.workerPids()[0]! }, n, () => sequential(v1, frame, n, "42"));
  const v1Final = (m: string) => m === "OK" || m.startsWith("ERR");
  await pipelined(v1, frame, 1000, 32, v1Final); // warm-up, as for the one-at-a-time figures
  const piped = await pipelined(v1, frame, n, 32, v1Final);
  // Every cell text new (a comment with a counter): what a cell costs when it must be compiled.
  const fresh = await sequential(v1, (i) => `${frame}  # ${i}`, n, "42");
  v1.close();
  const v0 = await WsClient.connect(d.e.sock, ["pythond.0.4"]);
  await sequential(v0, frame, 500, "42");
  const legacy = await sequential(v0, frame, n, "42");
  await pipelined(v0, frame, 1000, 32, () => true);
  const pipedLegacy = await pipelined(v0, frame, n, 32, () => true);
  v0.close();

  const fl = await floor(n);
  const relay = await relayFloor(n);
  const jn = Math.max(100, Math.round(500 * o.scale));
  const jup = await jupyter(jn);

  const rows: Row[] = [
    { figure: "pythond.1 p50", value: fmtUs(ours.p50), baseline: `floor ${fmtUs(fl.p50)}`, ratio: ratio(ours.p50, fl.p50), target: "<= 2x floor", met: ours.p50 <= 2 * fl.p50 },
    { figure: "pythond.1 p99", value: fmtUs(ours.p99), baseline: `floor ${fmtUs(fl.p99)}`, ratio: ratio(ours.p99, fl.p99) },
    { figure: "pythond.1 cells/s, one at a time", value: ours.perSec.toFixed(0), baseline: `floor ${fl.perSec.toFixed(0)}`, ratio: ratio(ours.perSec, fl.perSec), target: ">= 10000", met: ours.perSec >= 10_000 },
    { figure: "pythond.1 cells/s, 32 in flight", value: piped.toFixed(0), baseline: `floor ${fl.perSec.toFixed(0)}`, ratio: ratio(piped, fl.perSec), target: ">= 10000", met: piped >= 10_000 },
    { figure: "do-nothing relay process in between: p50", value: fmtUs(relay.p50), baseline: `floor ${fmtUs(fl.p50)}`, ratio: ratio(relay.p50, fl.p50) },
    { figure: "pythond.1 p50 vs the do-nothing relay", value: fmtUs(ours.p50), baseline: `relay ${fmtUs(relay.p50)}`, ratio: ratio(ours.p50, relay.p50) },
    { figure: "pythond.1 p50, new cell text each time", value: fmtUs(fresh.p50), baseline: `floor ${fmtUs(fl.p50)}`, ratio: ratio(fresh.p50, fl.p50) },
    { figure: "pythond.0.4 p50", value: fmtUs(legacy.p50), baseline: `floor ${fmtUs(fl.p50)}`, ratio: ratio(legacy.p50, fl.p50), target: "<= 2x floor", met: legacy.p50 <= 2 * fl.p50 },
    { figure: "pythond.0.4 p99", value: fmtUs(legacy.p99), baseline: `floor ${fmtUs(fl.p99)}`, ratio: ratio(legacy.p99, fl.p99) },
    { figure: "pythond.0.4 cells/s, one at a time", value: legacy.perSec.toFixed(0), baseline: `floor ${fl.perSec.toFixed(0)}`, ratio: ratio(legacy.perSec, fl.perSec), target: ">= 10000", met: legacy.perSec >= 10_000 },
    { figure: "pythond.0.4 cells/s, 32 in flight", value: pipedLegacy.toFixed(0), baseline: `floor ${fl.perSec.toFixed(0)}`, ratio: ratio(pipedLegacy, fl.perSec) },
  ];
  const c = ours.cpu!;
  const f = fl.cpu!;
  rows.push(
    { figure: "CPU per cell: worker (python)", value: fmtUs(c.worker!), baseline: `floor python ${fmtUs(f.python!)}`, ratio: ratio(c.worker!, f.python!) },
    { figure: "CPU per cell: daemon", value: fmtUs(c.daemon!), baseline: `do-nothing relay ${fmtUs(relay.cpu!.relay!)}`, ratio: ratio(c.daemon!, relay.cpu!.relay!) },
    { figure: "CPU per cell: client", value: fmtUs(c.client!), baseline: `floor client ${fmtUs(f.client!)}`, ratio: ratio(c.client!, f.client!) },
  );
  const notes = [
    `${n} cells per figure after 500 warm-up cells (1000 pipelined before the pipelined figures); client, daemon and worker share the 2 cores`,
    "CPU per cell: user + system time from /proc over the pythond.1 one-at-a-time run (10 ms ticks), all threads",
    "do-nothing relay: bench/floor.ts as a process between this client and the same evaluator (a Bun WebSocket server on a Unix socket that forwards cells and answers and does nothing else): the least any design with a router process between client and Python costs",
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
