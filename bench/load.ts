/**
 * 5. Load: 500 concurrent WebSocket clients running `x + 1` cells against 10 sessions (client i
 * uses session i % 10), each client sending its next cell when the last one answered, for a fixed
 * duration (--seconds, default 20). Throughput, latency percentiles, errors (any reply that is not
 * the right output and OK, or a closed connection). Baseline: one client on one session for a few
 * seconds in the same run.
 */
import { MB, fdCount, spareSettled, fmtMs, pct, ratio, rss, rssSampler, sorted, standalone, startDaemon, WsClient, type BenchOptions, type BenchResult } from "./lib.ts";

interface LoadStats {
  cells: number;
  errors: number;
  lat: number[];
  seconds: number;
  firstError?: string;
}

async function drive(clients: WsClient[], sessions: number, seconds: number): Promise<LoadStats> {
  const st: LoadStats = { cells: 0, errors: 0, lat: [], seconds };
  const deadline = performance.now() + seconds * 1000;
  const t0 = performance.now();
  await Promise.all(
    clients.map(async (c, i) => {
      const frame = `run s${i % sessions}\nx + 1`;
      while (performance.now() < deadline) {
        const a = performance.now();
        try {
          const r = await c.ask(frame);
          if (r.final !== "OK" || r.out !== "2\n") {
            st.errors++;
            st.firstError ??= JSON.stringify(r).slice(0, 200);
            continue;
          }
        } catch (e) {
          st.errors++;
          st.firstError ??= String(e);
          return;
        }
        st.lat.push(performance.now() - a);
        st.cells++;
      }
    }),
  );
  st.seconds = (performance.now() - t0) / 1000;
  return st;
}

export async function benchLoad(o: BenchOptions): Promise<BenchResult> {
  const nClients = 500;
  const nSessions = 10;
  await using d = await startDaemon();
  const admin = await WsClient.connect(d.e.sock);
  for (let i = 0; i < nSessions; i++) {
    const r = await admin.ask(`new s${i}`);
    if (!r.final.startsWith("OK")) throw new Error(r.final);
    await admin.ask(`run s${i}\nx = 1`);
  }
  await spareSettled(d);
  const single = await drive([admin], 1, Math.min(3, o.loadSeconds));
  const fdsBefore = fdCount(d.pid);
  const rssBefore = rss(d.pid);
  const clients = await Promise.all(Array.from({ length: nClients }, () => WsClient.connect(d.e.sock)));
  const sampler = rssSampler(d.pid, 50);
  const st = await drive(clients, nSessions, o.loadSeconds);
  const peak = sampler.stop();
  const fdsDuring = fdCount(d.pid);
  for (const c of clients) c.close();
  admin.close();
  const s = sorted(st.lat);
  const tput = st.cells / st.seconds;
  const base = single.cells / single.seconds;
  return {
    id: "load",
    title: `5. Load: ${nClients} clients, ${nSessions} sessions, ${o.loadSeconds} s`,
    rows: [
      { figure: "cells/s (all clients)", value: tput.toFixed(0), baseline: `1 client, 1 session ${base.toFixed(0)}`, ratio: ratio(tput, base) },
      { figure: "latency p50", value: fmtMs(pct(s, 50)), baseline: `1 client ${fmtMs(pct(sorted(single.lat), 50))}` },
      { figure: "latency p99", value: fmtMs(pct(s, 99)), baseline: `1 client ${fmtMs(pct(sorted(single.lat), 99))}` },
      { figure: "latency max", value: fmtMs(s[s.length - 1] ?? NaN) },
      { figure: "errors", value: String(st.errors), target: "0", met: st.errors === 0 },
      { figure: "cells completed", value: String(st.cells) },
      { figure: "daemon RSS peak", value: `${(peak / MB).toFixed(0)} MB`, baseline: `before ${(rssBefore / MB).toFixed(0)} MB` },
      { figure: "daemon fds during load", value: String(fdsDuring), baseline: `before ${fdsBefore}` },
    ],
    notes: [
      `${nClients} clients in the benchmark process; with ${nSessions} sessions at most ${nSessions} cells run at once (each session runs its cells in order)`,
      ...(st.firstError ? [`first error: ${st.firstError}`] : []),
    ],
  };
}

if (import.meta.main) await standalone(benchLoad);
