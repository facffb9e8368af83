/**
 * 3. Session creation: from sending `new` until the first `run` in the new session answers, over
 * an open WebSocket (so the client's own start-up is not counted). Baseline: starting the same
 * interpreter to do nothing (`python3 -c pass`), the floor for any session that begins with a
 * fresh Python. Sessions are created one at a time, each killed before the next; a pause between
 * them lets a daemon that keeps a warm spare interpreter get it ready, as it would between an
 * agent's calls.
 */
import { fmtMs, median, pct, ratio, realPython, sorted, standalone, startDaemon, timeSpawn, WsClient, type BenchOptions, type BenchResult } from "./lib.ts";

export async function benchSession(o: BenchOptions): Promise<BenchResult> {
  const n = Math.max(10, Math.round(25 * o.scale));
  await using d = await startDaemon();
  const c = await WsClient.connect(d.e.sock, ["pythond.1"]);
  const create: number[] = [];
  const total: number[] = [];
  const back: number[] = [];
  for (let i = 0; i < n + 2; i++) {
    await Bun.sleep(300); // idle time between an agent's calls
    const name = `s${i}`;
    const t0 = performance.now();
    const r = await c.ask(`new ${name}`);
    const t1 = performance.now();
    if (!r.final.startsWith(`OK ${name}`)) throw new Error(`new: ${r.final}`);
    const run = await c.ask(`run ${name}\n1 + 1`);
    const t2 = performance.now();
    if (run.out !== "2\n") throw new Error(`run: ${JSON.stringify(run)}`);
    await c.ask(`kill ${name}`);
    if (i < 2) continue;
    create.push(t1 - t0);
    total.push(t2 - t0);
    back.push(t2 - t1);
  }
  c.close();
  const py = realPython();
  const start: number[] = [];
  const shim: number[] = [];
  for (let i = 0; i < Math.min(n, 15); i++) {
    start.push(timeSpawn([py, "-c", "pass"], d.e.env).ms);
    shim.push(timeSpawn(["python3", "-c", "pass"], d.e.env).ms);
  }
  const m = median(total);
  const p = median(start);
  return {
    id: "session",
    title: `3. Session creation: new until the first run answers (median of ${n})`,
    rows: [
      { figure: "new + first run, median", value: fmtMs(m), baseline: `python3 -c pass ${fmtMs(p)}`, ratio: ratio(m, p), target: "<= 40 ms", met: m <= 40 },
      { figure: "new + first run, p90", value: fmtMs(pct(sorted(total), 90)), baseline: `python3 -c pass ${fmtMs(pct(sorted(start), 90))}` },
      { figure: "new alone, median", value: fmtMs(median(create)), baseline: `python3 -c pass ${fmtMs(p)}`, ratio: ratio(median(create), p), target: "<= 5 ms (warm spare)", met: median(create) <= 5 },
      { figure: "first run after new, median", value: fmtMs(median(back)) },
    ],
    notes: [
      `python3 -c pass: ${py}; through the PATH's python3 (the daemon's default): ${fmtMs(median(shim))}`,
    ],
  };
}

if (import.meta.main) await standalone(benchSession);
