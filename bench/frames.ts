/**
 * 7. Large request frames: the daemon's peak RSS (VmHWM, the kernel's own high-water mark, so no
 * sampling can miss a peak) while one 60 MB `run` frame, and while six sent at once on six
 * connections, go through it. Each case gets a fresh daemon (VmHWM never goes down). Baseline: the
 * same daemon's peak after a small cell (what it holds with no large frame at all).
 *
 * The frames are comments (`#xxxx…`): Python compiles them at once, so the figure is what the
 * daemon holds for bodies in flight, not what the cell does. Frames the daemon refuses for its
 * in-flight bound (`ERR busy …`, --max-inflight) are counted and shown.
 */
import { readFileSync } from "node:fs";
import { MB, spareSettled, ratio, standalone, startDaemon, WsClient, type BenchOptions, type BenchResult, type Row } from "./lib.ts";

function peakRss(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) * 1024 : 0;
}

interface Case {
  peak: number;
  base: number;
  ok: number;
  busy: number;
}

async function frames(count: number, size: number, args: string[]): Promise<Case> {
  await using d = await startDaemon(args);
  const setup = await WsClient.connect(d.e.sock);
  if ((await setup.ask("new big")).final.startsWith("ERR")) throw new Error("new failed");
  await spareSettled(d);
  await setup.ask("run big\n1 + 1");
  const base = peakRss(d.pid);
  const clients = await Promise.all(Array.from({ length: count }, () => WsClient.connect(d.e.sock)));
  const body = "#" + "x".repeat(size - 1);
  const replies = await Promise.all(clients.map((c) => c.ask(`run big\n${body}`)));
  const peak = peakRss(d.pid);
  for (const c of [setup, ...clients]) c.close();
  const ok = replies.filter((r) => r.final === "OK").length;
  const busy = replies.filter((r) => r.final.startsWith("ERR busy")).length;
  if (ok + busy !== count) throw new Error(`unexpected replies: ${replies.map((r) => r.final.slice(0, 80)).join(" | ")}`);
  return { peak, base, ok, busy };
}

export async function benchFrames(o: BenchOptions): Promise<BenchResult> {
  const size = Math.max(8, Math.round(60 * o.scale)) * MB;
  const extra = (process.env.PYTHOND_BENCH_DAEMON_ARGS ?? "").split(" ").filter(Boolean);
  const one = await frames(1, size, extra);
  const six = await frames(6, size, extra);
  const mb = (n: number) => `${(n / MB).toFixed(0)} MB`;
  const rows: Row[] = [
    { figure: `one ${size / MB} MB frame: daemon peak RSS`, value: mb(one.peak), baseline: `no large frame ${mb(one.base)}`, ratio: ratio(one.peak, one.base) },
    { figure: `one frame: growth per frame`, value: mb(one.peak - one.base) },
    { figure: `six ${size / MB} MB frames at once: daemon peak RSS`, value: mb(six.peak), baseline: `no large frame ${mb(six.base)}`, ratio: ratio(six.peak, six.base) },
    { figure: `six frames: growth, in one frame's growths`, value: mb(six.peak - six.base), baseline: `one frame ${mb(one.peak - one.base)}`, ratio: ratio(six.peak - six.base, one.peak - one.base), target: "< 6x (no bound: ~6x)", met: (six.peak - six.base) < 5 * (one.peak - one.base) },
    { figure: `six frames: ran / refused (busy)`, value: `${six.ok} / ${six.busy}` },
  ];
  return {
    id: "frames",
    title: "Large request frames: daemon peak RSS (VmHWM)",
    rows,
    notes: [
      `daemon args: ${extra.join(" ") || "(defaults)"}; each case on a fresh daemon`,
      "what remains for refused frames is the WebSocket layer's receive buffer (each connection holds up to --max-frame while a frame arrives, and keeps its capacity until it closes): no Bun API holds a frame back before it is whole",
    ],
  };
}

if (import.meta.main) await standalone(benchFrames);
