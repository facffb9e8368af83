/**
 * 1. One-shot CLI: `pysh run work "x+1"` from process start to exit (its output read), median of
 * many, against `pythond --version` (the binary's own start-up floor) and `python3 -c pass` (what
 * any Python-based client pays before doing anything), interleaved so drift hits all three alike.
 */
import { BIN, PYSH, fmtMs, spareSettled, median, pct, ratio, realPython, sorted, standalone, startDaemon, timeSpawn, type BenchOptions, type BenchResult } from "./lib.ts";

export async function benchCli(o: BenchOptions): Promise<BenchResult> {
  const n = Math.max(20, Math.round(40 * o.scale));
  await using d = await startDaemon();
  await d.pysh(["new", "work"]);
  await d.pysh(["run", "work", "x = 41"]);
  await spareSettled(d);
  const py = realPython();
  const runs = { pysh: [] as number[], version: [] as number[], python: [] as number[], pyshim: [] as number[] };
  for (let i = 0; i < n + 3; i++) {
    const a = timeSpawn([PYSH, "run", "work", "x+1"], d.e.env);
    if (a.out !== "42\n") throw new Error(`pysh run printed ${JSON.stringify(a.out)}`);
    const b = timeSpawn([BIN, "--version"], d.e.env);
    const c = timeSpawn([py, "-c", "pass"], d.e.env);
    const s = timeSpawn(["python3", "-c", "pass"], d.e.env);
    if (i < 3) continue; // warm-up: page cache, first bytecode load
    runs.pysh.push(a.ms);
    runs.version.push(b.ms);
    runs.python.push(c.ms);
    runs.pyshim.push(s.ms);
  }
  const m = median(runs.pysh);
  const v = median(runs.version);
  const p = median(runs.python);
  const ps = median(runs.pyshim);
  return {
    id: "cli",
    title: `1. One-shot CLI: pysh run work "x+1" (median of ${n})`,
    rows: [
      { figure: "pysh run, median", value: fmtMs(m), baseline: `pythond --version ${fmtMs(v)}`, ratio: ratio(m, v), target: "<= 15 ms", met: m <= 15 },
      { figure: "pysh run, median", value: fmtMs(m), baseline: `python3 -c pass ${fmtMs(p)}`, ratio: ratio(m, p) },
      { figure: "pysh run, p90", value: fmtMs(pct(sorted(runs.pysh), 90)), baseline: `pythond --version ${fmtMs(pct(sorted(runs.version), 90))}` },
      { figure: "pysh run minus binary start", value: fmtMs(m - v), baseline: "connect + cell + reply" },
    ],
    notes: [
      `python3 -c pass uses the real interpreter ${py}; through the PATH's python3 (${ps === p ? "same" : "a shim here"}) it takes ${fmtMs(ps)}`,
      "times are spawn to exit as seen by the benchmark (Bun.spawnSync), so they include fork/exec and reading the output",
    ],
  };
}

if (import.meta.main) await standalone(benchCli);
