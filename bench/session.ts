/**
 * 3. Session creation: from sending `new` until the first `run` in the new session answers, over
 * an open WebSocket (the client's own start-up is not counted). Sessions are created one at a
 * time and killed after their first cell.
 *
 *  - warm: the daemon's warm spare (src/sessions/spare.ts) is ready, as it is when an agent's calls
 *    are not back to back (we wait for it: its record appears in `<runtime>/spares/`);
 *  - back to back: the next `new` right after the last kill, while the spare is still starting;
 *  - cold (same run, PYTHOND_SPARE=0): every `new` starts Python, the way it was before spares;
 *  - floor: starting the same interpreter to do nothing (`python3 -c pass`).
 */
import { fmtMs, median, pct, ratio, realPython, sorted, spareReady, standalone, startDaemon, timeSpawn, until, WsClient, type BenchOptions, type BenchResult } from "./lib.ts";

async function create(sock: string, n: number, prefix: string, before: () => Promise<void>) {
  const c = await WsClient.connect(sock, ["pythond.1"]);
  const total: number[] = [];
  const alone: number[] = [];
  for (let i = 0; i < n; i++) {
    await before();
    const name = `${prefix}${i}`;
    const t0 = performance.now();
    const r = await c.ask(`new ${name}`);
    const t1 = performance.now();
    if (!r.final.startsWith(`OK ${name}`)) throw new Error(`new: ${r.final}`);
    const run = await c.ask(`run ${name}\n1 + 1`);
    const t2 = performance.now();
    if (run.out !== "2\n") throw new Error(`run: ${JSON.stringify(run)}`);
    await c.ask(`kill ${name}`);
    total.push(t2 - t0);
    alone.push(t1 - t0);
  }
  c.close();
  return { total, alone };
}

export async function benchSession(o: BenchOptions): Promise<BenchResult> {
  const n = Math.max(10, Math.round(25 * o.scale));
  const notes: string[] = [];
  let warm, b2b;
  {
    await using d = await startDaemon();
    await create(d.e.sock, 2, "w", async () => {}); // the first `new` has no spare yet
    warm = await create(d.e.sock, n, "s", () => until(() => spareReady(d), "the spare to be ready", 10_000));
    b2b = await create(d.e.sock, Math.min(n, 10), "b", async () => {});
  }
  let cold;
  {
    const prev = process.env.PYTHOND_SPARE;
    process.env.PYTHOND_SPARE = "0"; // read by the harness's makeEnv for the daemon's environment
    try {
      await using d = await startDaemon();
      cold = await create(d.e.sock, Math.min(n, 15), "c", async () => {});
    } finally {
      if (prev === undefined) delete process.env.PYTHOND_SPARE;
      else process.env.PYTHOND_SPARE = prev;
    }
  }
  const py = realPython();
  const start: number[] = [];
  const shim: number[] = [];
  for (let i = 0; i < 15; i++) {
    start.push(timeSpawn([py, "-c", "pass"], process.env as Record<string, string>).ms);
    shim.push(timeSpawn(["python3", "-c", "pass"], process.env as Record<string, string>).ms);
  }
  const m = median(warm.total);
  const c = median(cold.total);
  const p = median(start);
  notes.push(`python3 -c pass: ${py}; through the PATH's python3 (what the daemon starts by default): ${fmtMs(median(shim))}`);
  return {
    id: "session",
    title: `3. Session creation: new until the first run answers (median of ${n})`,
    rows: [
      { figure: "warm spare: new + first run", value: fmtMs(m), baseline: `cold ${fmtMs(c)}`, ratio: ratio(m, c), target: "<= 40 ms", met: m <= 40 },
      { figure: "warm spare: new + first run, p90", value: fmtMs(pct(sorted(warm.total), 90)), baseline: `cold ${fmtMs(pct(sorted(cold.total), 90))}` },
      { figure: "warm spare: new alone", value: fmtMs(median(warm.alone)), baseline: `cold ${fmtMs(median(cold.alone))}`, ratio: ratio(median(warm.alone), median(cold.alone)), target: "<= 5 ms", met: median(warm.alone) <= 5 },
      { figure: "back to back: new + first run", value: fmtMs(median(b2b.total)), baseline: `cold ${fmtMs(c)}`, ratio: ratio(median(b2b.total), c) },
      { figure: "cold (PYTHOND_SPARE=0): new + first run", value: fmtMs(c), baseline: `python3 -c pass ${fmtMs(p)}`, ratio: ratio(c, p) },
    ],
    notes,
  };
}

if (import.meta.main) await standalone(benchSession);
