/**
 * Protocol fuzz, the long variant of test/e2e/reliability-fuzz.test.ts: 100,000 random, truncated,
 * oversize and invalid-UTF-8 frames (test/fixtures/fuzz.ts) from 8 connections at a time against a
 * daemon with a 1 MiB frame limit. Every frame must be answered with a reply or a close, the daemon
 * must still serve afterwards, and its RSS must level off (compared: after the first 10% of the
 * frames, and at the end).
 */
import { fuzz } from "../test/fixtures/fuzz.ts";
import { MB, fdCount, spareSettled, rss, standalone, startDaemon, type BenchOptions, type BenchResult } from "./lib.ts";

export async function benchFuzz(o: BenchOptions): Promise<BenchResult> {
  const frames = Math.max(10_000, Math.round(100_000 * o.scale));
  await using d = await startDaemon(["--max-frame", "1"]);
  await d.pysh(["new", "work"]);
  await spareSettled(d);
  const fdsBefore = fdCount(d.pid);
  const before = rss(d.pid);
  let early = 0;
  let peak = before;
  const t0 = performance.now();
  const st = await fuzz({
    sock: d.e.sock,
    frames,
    conns: 8,
    session: "work",
    maxPayload: 1024 * 1024 + 4096,
    onProgress(n) {
      if (n % 1000 !== 0) return;
      const now = rss(d.pid);
      peak = Math.max(peak, now);
      if (n === frames / 10) early = now;
    },
  });
  const secs = (performance.now() - t0) / 1000;
  const after = rss(d.pid);
  const serves = (await d.pysh(["run", "work", "6 * 7"])).stdout === "42\n";
  const unanswered = st.failures.length;
  const growth = (after - early) / MB;
  return {
    id: "fuzz",
    title: `Protocol fuzz: ${frames} frames, 8 connections at a time (seed ${st.seed})`,
    rows: [
      { figure: "frames answered (reply or close)", value: `${st.replied + st.closed} / ${st.sent}`, target: "all", met: unanswered === 0 && st.replied + st.closed === st.sent },
      { figure: "frames/s", value: (st.sent / secs).toFixed(0) },
      { figure: "replies / closes", value: `${st.replied} / ${st.closed}`, baseline: `${st.connections} connections` },
      { figure: "daemon still serves", value: serves ? "yes" : "no", target: "yes", met: serves },
      { figure: "daemon RSS growth after the first 10%", value: `${growth.toFixed(1)} MB`, baseline: `at 10%: ${(early / MB).toFixed(0)} MB, start ${(before / MB).toFixed(0)} MB`, target: "<= 16 MB", met: growth <= 16 },
      { figure: "daemon RSS peak", value: `${(peak / MB).toFixed(0)} MB` },
      { figure: "daemon fds after", value: String(fdCount(d.pid)), baseline: `before ${fdsBefore}` },
    ],
    notes: [
      `close codes: ${Object.entries(st.closeCodes).map(([k, v]) => `${k}×${v}`).join(", ")}`,
      `kinds: ${Object.entries(st.byKind).map(([k, v]) => `${k} ${v}`).join(", ")}`,
      ...st.failures.slice(0, 5).map((f) => `failure: ${f}`),
    ],
  };
}

if (import.meta.main) await standalone(benchFuzz);
