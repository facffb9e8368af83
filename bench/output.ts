/**
 * 4. Output: one cell writing 100 MB, through `pysh run` to /dev/null: MB/s (pysh start to exit)
 * and the daemon's RSS growth (peak during the cell minus before). Baseline: the same Python
 * statement run by a plain `python3` with stdout to /dev/null. Also a print loop (1M short lines,
 * many small writes), against the same loop in plain python3.
 */
import { MB, fmtMs, spareSettled, ratio, realPython, rss, rssSampler, standalone, startDaemon, PYSH, type BenchOptions, type BenchResult, type Row } from "./lib.ts";

function timeToDevNull(cmd: string[], env: Record<string, string>): number {
  const t0 = performance.now();
  const p = Bun.spawnSync(cmd, { env, stdin: "ignore", stdout: Bun.file("/dev/null"), stderr: "pipe" });
  const ms = performance.now() - t0;
  if (p.exitCode !== 0) throw new Error(`${cmd.join(" ")} failed: ${p.stderr.toString()}`);
  return ms;
}

async function timeAsync(cmd: string[], env: Record<string, string>): Promise<number> {
  const t0 = performance.now();
  const p = Bun.spawn(cmd, { env, stdin: "ignore", stdout: Bun.file("/dev/null"), stderr: "pipe" });
  const [code, err] = await Promise.all([p.exited, new Response(p.stderr).text()]);
  if (code !== 0) throw new Error(`${cmd.join(" ")} failed: ${err}`);
  return performance.now() - t0;
}

export async function benchOutput(o: BenchOptions): Promise<BenchResult> {
  const mb = Math.max(10, Math.round(100 * o.scale));
  const lines = Math.max(100_000, Math.round(1_000_000 * o.scale));
  const big = `import sys; sys.stdout.write('x' * ${mb * MB})`;
  const loop = `for i in range(${lines}): print(i)`;
  await using d = await startDaemon();
  await d.pysh(["new", "out"]);
  await spareSettled(d);
  const py = realPython();

  await timeAsync([PYSH, "run", "out", "print('x' * 1000000)"], d.e.env); // warm-up
  const before = rss(d.pid);
  const sampler = rssSampler(d.pid);
  const bigMs = await timeAsync([PYSH, "run", "out", big], d.e.env);
  const peak = sampler.stop();
  const after = rss(d.pid);
  const bigBase = timeToDevNull([py, "-S", "-c", big], d.e.env);

  const s2 = rssSampler(d.pid);
  const loopMs = await timeAsync([PYSH, "run", "out", loop], d.e.env);
  const peak2 = s2.stop();
  const loopBase = timeToDevNull([py, "-S", "-c", loop], d.e.env);

  const rate = mb / (bigMs / 1000);
  const baseRate = mb / (bigBase / 1000);
  const growth = (peak - before) / MB;
  const loopRate = lines / (loopMs / 1000);
  const rows: Row[] = [
    { figure: `${mb} MB in one write: MB/s`, value: rate.toFixed(0), baseline: `python3 > /dev/null ${baseRate.toFixed(0)}`, ratio: ratio(rate, baseRate), target: ">= 200", met: rate >= 200 },
    { figure: `${mb} MB in one write: wall`, value: fmtMs(bigMs), baseline: `python3 ${fmtMs(bigBase)}`, ratio: ratio(bigMs, bigBase) },
    { figure: "daemon RSS growth (peak - before)", value: `${growth.toFixed(1)} MB`, baseline: `before ${(before / MB).toFixed(0)} MB`, target: "<= 32 MB", met: growth <= 32 },
    { figure: "daemon RSS after the cell", value: `${(after / MB).toFixed(0)} MB` },
    { figure: `print loop, ${lines / 1000}k lines: lines/s`, value: loopRate.toFixed(0), baseline: `python3 ${(lines / (loopBase / 1000)).toFixed(0)}`, ratio: ratio(loopMs, loopBase).replace("x", "x slower") },
    { figure: "print loop: wall", value: fmtMs(loopMs), baseline: `python3 ${fmtMs(loopBase)}`, ratio: ratio(loopMs, loopBase) },
    { figure: "print loop: daemon RSS growth", value: `${((peak2 - after) / MB).toFixed(1)} MB`, target: "<= 32 MB", met: (peak2 - after) / MB <= 32 },
  ];
  return {
    id: "output",
    title: `4. Output: a ${mb} MB cell and a print loop through pysh run to /dev/null`,
    rows,
    notes: [`wall is pysh start to exit; the baselines run the same statement in ${py} -S with stdout on /dev/null`],
  };
}

if (import.meta.main) await standalone(benchOutput);
