/**
 * Shared pieces of the benchmarks: a private daemon (the e2e harness's), statistics, a lean
 * WebSocket client, /proc readings, and the result table every benchmark prints.
 *
 * Every figure is printed beside a baseline measured in the same run, and their ratio, so a
 * slower or busier machine shifts both columns instead of making the numbers meaningless.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { BIN, Daemon, makeEnv, sparesDir, until } from "../test/e2e/harness.ts";
import { rss } from "../test/fixtures/proc.ts";

export { BIN, PYSH, makeEnv, killGroup, until, type Daemon } from "../test/e2e/harness.ts";

/**
 * The e2e harness's daemon, except that its stderr (an ACCESS line per command) goes to a file, as
 * it would to a journal: through a pipe, this process would be reading it during every
 * measurement, and its reading would be counted against the daemon.
 */
class BenchDaemon extends Daemon {
  override async start(args: string[] = []): Promise<this> {
    const file = join(this.e.dir, "daemon.stderr");
    this.proc = Bun.spawn([BIN, "daemon", ...args], { env: this.e.env, cwd: this.e.dir, stdout: "ignore", stderr: Bun.file(file) });
    const listening = () => existsSync(file) && readFileSync(file, "utf8").includes("listening on");
    await until(() => listening() || this.proc.exitCode !== null, "the daemon to listen", 30_000);
    if (!listening()) throw new Error(`daemon failed: ${readFileSync(file, "utf8")}`);
    return this;
  }
}

export function startDaemon(args: string[] = []): Promise<Daemon> {
  return new BenchDaemon(makeEnv()).start(args);
}

/**
 * Waits until the daemon's warm spare (src/sessions/spare.ts), started after a `new`, is ready: its
 * start-up (a Python process) would otherwise run during the measurement that follows.
 */
export async function spareSettled(d: Daemon): Promise<void> {
  if (process.env.PYTHOND_SPARE === "0") return;
  await until(() => spareReady(d), "the warm spare to be ready", 15_000).catch(() => {});
}

/** The daemon's warm spare has written its record (it is ready to be claimed). */
export function spareReady(d: Daemon): boolean {
  try {
    return readdirSync(sparesDir(d)).some((f) => f.endsWith(".json"));
  } catch {
    return false;
  }
}

export interface Row {
  figure: string;
  value: string;
  baseline?: string;
  ratio?: string;
  target?: string;
  /** Whether the target is met (undefined: no target). */
  met?: boolean;
}

export interface BenchResult {
  id: string;
  title: string;
  rows: Row[];
  notes: string[];
}

export interface BenchOptions {
  /** Scale factor for counts and durations (0.1 for a quick smoke run). */
  scale: number;
  /** Load benchmark duration, seconds. */
  loadSeconds: number;
}

export function benchOptions(argv = process.argv.slice(2)): BenchOptions {
  const get = (k: string) => {
    const a = argv.find((x) => x.startsWith(`--${k}=`));
    return a ? Number(a.slice(k.length + 3)) : undefined;
  };
  const scale = get("scale") ?? Number(process.env.BENCH_SCALE ?? 1);
  const loadSeconds = get("seconds") ?? Number(process.env.BENCH_LOAD_SECONDS ?? 20);
  if (!(scale > 0) || !(loadSeconds > 0) || loadSeconds > 600) throw new Error("--scale > 0, 0 < --seconds <= 600");
  return { scale, loadSeconds };
}

// -- statistics ---------------------------------------------------------------------------------

export function sorted(xs: number[]): number[] {
  return [...xs].sort((a, b) => a - b);
}

/** Nearest-rank percentile of an ascending array. */
export function pct(sortedXs: ArrayLike<number>, p: number): number {
  if (sortedXs.length === 0) return NaN;
  const i = Math.min(sortedXs.length - 1, Math.max(0, Math.ceil((p / 100) * sortedXs.length) - 1));
  return sortedXs[i]!;
}

export const median = (xs: number[]) => pct(sorted(xs), 50);

export function fmtMs(ms: number): string {
  return ms >= 100 ? `${ms.toFixed(0)} ms` : ms >= 10 ? `${ms.toFixed(1)} ms` : `${ms.toFixed(2)} ms`;
}

export function fmtUs(ms: number): string {
  return `${(ms * 1000).toFixed(0)} µs`;
}

export function ratio(a: number, b: number): string {
  return `${(a / b).toFixed(2)}x`;
}

// -- /proc ----------------------------------------------------------------------------------------

export { rss, fdCount, threadCount, childPids } from "../test/fixtures/proc.ts";

/** Samples a process's RSS every `everyMs` until stopped; returns the peak. */
export function rssSampler(pid: number, everyMs = 5) {
  let peak = rss(pid);
  const t = setInterval(() => {
    try {
      peak = Math.max(peak, rss(pid));
    } catch {}
  }, everyMs);
  return {
    stop(): number {
      clearInterval(t);
      try {
        peak = Math.max(peak, rss(pid));
      } catch {}
      return peak;
    },
  };
}

export const MB = 1024 * 1024;

// -- a lean WebSocket client ------------------------------------------------------------------------

export type Msg = string | Uint8Array;

export class WsClient {
  private inbox: Msg[] = [];
  private head = 0;
  private waiter?: { resolve(m: Msg): void; reject(e: Error): void };
  closed?: { code: number; reason: string };

  private constructor(readonly ws: WebSocket) {
    ws.binaryType = "uint8array" as WebSocket["binaryType"];
    ws.onmessage = (ev) => {
      const w = this.waiter;
      if (w) {
        this.waiter = undefined;
        w.resolve(ev.data as Msg);
      } else this.inbox.push(ev.data as Msg);
    };
    ws.onclose = (ev) => {
      this.closed = { code: ev.code, reason: ev.reason };
      this.waiter?.reject(new Error(`closed ${ev.code} ${ev.reason}`));
      this.waiter = undefined;
    };
  }

  static connect(sock: string, protocols: string[] = ["pythond.1"]): Promise<WsClient> {
    const ws = new WebSocket(`ws+unix://${sock}`, protocols);
    return new Promise((resolve, reject) => {
      ws.onopen = () => resolve(new WsClient(ws));
      ws.onerror = () => reject(new Error(`cannot connect to ${sock}`));
    });
  }

  send(m: string | Uint8Array): void {
    this.ws.send(m);
  }

  next(): Promise<Msg> {
    if (this.head < this.inbox.length) {
      const m = this.inbox[this.head++]!;
      if (this.head > 1024 && this.head * 2 > this.inbox.length) {
        this.inbox = this.inbox.slice(this.head);
        this.head = 0;
      }
      return Promise.resolve(m);
    }
    if (this.closed) return Promise.reject(new Error(`closed ${this.closed.code}`));
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
  }

  /** Sends a command and returns its final text reply (pythond.1: after CELL and output). */
  async ask(m: string): Promise<{ final: string; out: string }> {
    this.send(m);
    let out = "";
    for (;;) {
      const r = await this.next();
      if (typeof r !== "string") out += new TextDecoder().decode(r);
      else if (!r.startsWith("CELL ")) return { final: r, out };
    }
  }

  close(): void {
    this.ws.close();
  }
}

// -- processes ------------------------------------------------------------------------------------

/** Wall time of one process run to completion, ms (stdout discarded). */
export function timeSpawn(cmd: string[], env: Record<string, string>, cwd?: string): { ms: number; code: number; out: string } {
  const t0 = performance.now();
  const p = Bun.spawnSync(cmd, { env, cwd, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const ms = performance.now() - t0;
  return { ms, code: p.exitCode ?? -1, out: p.stdout.toString() };
}

/** The interpreter `python3` resolves to (a pyenv shim is a bash script in front of it). */
export function realPython(): string {
  const p = Bun.spawnSync(["python3", "-c", "import sys; print(sys.executable)"], { stdout: "pipe" });
  return p.stdout.toString().trim() || "python3";
}

// -- output ---------------------------------------------------------------------------------------

export function table(r: BenchResult): string {
  const head = ["figure", "value", "baseline (same run)", "ratio", "target", "met"];
  const rows = r.rows.map((x) => [x.figure, x.value, x.baseline ?? "", x.ratio ?? "", x.target ?? "", x.met === undefined ? "" : x.met ? "yes" : "NO"]);
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(w[i]!)).join("  ").trimEnd();
  const out = [`\n== ${r.title}`, line(head), line(w.map((n) => "-".repeat(n))), ...rows.map(line)];
  for (const n of r.notes) out.push(`  note: ${n}`);
  return out.join("\n");
}

export function markdown(r: BenchResult): string {
  const head = "| figure | value | baseline (same run) | ratio | target | met |\n|---|---|---|---|---|---|";
  const rows = r.rows.map(
    (x) => `| ${x.figure} | ${x.value} | ${x.baseline ?? ""} | ${x.ratio ?? ""} | ${x.target ?? ""} | ${x.met === undefined ? "" : x.met ? "yes" : "**no**"} |`,
  );
  const notes = r.notes.map((n) => `- ${n}`);
  return [`### ${r.title}`, "", head, ...rows, "", ...notes].join("\n");
}

/** Runs one benchmark file on its own (`bun bench/cli.ts`): prints its table. */
export async function standalone(fn: (o: BenchOptions) => Promise<BenchResult>): Promise<void> {
  const r = await fn(benchOptions());
  console.log(table(r));
  process.exit(0);
}
