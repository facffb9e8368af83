/**
 * The fleet at scale (issue "Fleet", bench/RESULTS.md): a hub with 15,000 node links over TLS,
 * made by the node simulator (fleet-sim.ts) from four processes, each figure beside its baseline
 * measured in the same run:
 *
 *   - all nodes connected (first join: enrollment with a token), and again after the hub is
 *     SIGKILLed and restarted (mTLS reconnect storm, spread by retry-after and full jitter):
 *     time, nodes that had to come back twice (dropped), retry-after answers;
 *   - hub RSS and descriptors with all of them, against the same hub with none (per link);
 *   - hub CPU while all of them heartbeat (every 10 s), against the same hub idle with none;
 *   - a request to one node among 15,000 (`ls <node>` through the hub), p50, against a hub with
 *     that one node only;
 *   - a cell on a real node's session (`run node/s "1+1"` over a kept WebSocket to the hub) against
 *     the same cell on a session of the hub itself.
 *
 *   bun bench/fleet.ts [--scale=0.1]     (15,000 * scale nodes)
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { generateCertificate } from "../src/tls/index.ts";
import { cpuSeconds } from "../test/fixtures/proc.ts";
import { BIN, fdCount, fmtMs, fmtUs, makeEnv, MB, pct, PYSH, ratio, rss, sorted, standalone, until, WsClient, type BenchOptions, type BenchResult, type Row } from "./lib.ts";
import { PYCTL } from "../test/e2e/harness.ts";

export const PROCS = 4;

function loadAverage(): string {
  try {
    return readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  } catch {
    return "?";
  }
}

interface Hub {
  proc: ReturnType<typeof Bun.spawn>;
  port: number;
  env: Record<string, string>;
  sock: string;
  home: string;
  certPath: string;
  log: string;
}

export async function startHub(e = makeEnv(), port = 0): Promise<Hub> {
  const log = join(e.dir, `hub-${Date.now()}.stderr`);
  const env = { ...e.env, PYTHOND_PREAUTH_PER_SOURCE: "100000", PYTHOND_SPARE: "0" };
  const proc = Bun.spawn([BIN, "daemon", "--listen", `127.0.0.1:${port}`, "--tls", "--heartbeat", "10"], { env, cwd: e.dir, stdout: "ignore", stderr: Bun.file(log) });
  const text = () => {
    try {
      return readFileSync(log, "utf8");
    } catch {
      return "";
    }
  };
  await until(() => /listening on \//.test(text()) || proc.exitCode !== null, "the hub to listen", 30_000);
  const m = /listening on tls:\/\/127\.0\.0\.1:(\d+)/.exec(text());
  if (!m) throw new Error(`hub failed: ${text()}`);
  return { proc, port: Number(m[1]), env, sock: e.sock, home: e.home, certPath: join(e.home, ".pythond", "tls", "cert.pem"), log };
}

export function pyctl(h: Hub, args: string[]): string {
  const p = Bun.spawnSync([PYCTL, ...args], { env: h.env, stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`pyctl ${args.join(" ")}: ${p.stderr.toString()}`);
  return p.stdout.toString();
}

interface SimStats {
  up: number;
  welcomed: number;
  retries: number;
  refused: number;
}

/** The simulator processes and the sum of what they last reported. */
export class Sims {
  procs: Array<ReturnType<typeof Bun.spawn>> = [];
  last: SimStats[] = [];

  constructor(
    hub: Hub,
    keyDirs: string[],
    total: number,
    token: string,
    prefix = "sim",
  ) {
    const per = Math.ceil(total / keyDirs.length);
    keyDirs.forEach((dir, k) => {
      const n = Math.min(per, total - k * per);
      const p = Bun.spawn([process.execPath, join(import.meta.dir, "fleet-sim.ts"), String(hub.port), hub.certPath, dir, `${prefix}${k}`, String(n), token], {
        stdout: "pipe",
        stderr: "ignore",
      });
      this.procs.push(p);
      this.last.push({ up: 0, welcomed: 0, retries: 0, refused: 0 });
      void (async () => {
        let buf = "";
        for await (const chunk of p.stdout as ReadableStream<Uint8Array>) {
          buf += new TextDecoder().decode(chunk);
          const lines = buf.split("\n");
          buf = lines.pop()!;
          for (const l of lines) if (l.trim()) this.last[k] = JSON.parse(l) as SimStats;
        }
      })();
    });
  }

  sum(): SimStats {
    return this.last.reduce((a, s) => ({ up: a.up + s.up, welcomed: a.welcomed + s.welcomed, retries: a.retries + s.retries, refused: a.refused + s.refused }), { up: 0, welcomed: 0, retries: 0, refused: 0 });
  }

  pids(): number[] {
    return this.procs.map((p) => p.pid);
  }

  kill(): void {
    for (const p of this.procs) p.kill("SIGKILL");
  }
}

export async function waitAllUp(s: Sims, n: number, what: string, hubPid?: number): Promise<number> {
  const t0 = performance.now();
  const progress = setInterval(() => {
    const x = s.sum();
    let cpu = "";
    try {
      if (hubPid) cpu = ` hub cpu ${cpuSeconds(hubPid).toFixed(1)}s`;
    } catch {}
    process.stderr.write(`  ${((performance.now() - t0) / 1000).toFixed(0)}s: up ${x.up} welcomed ${x.welcomed} retries ${x.retries} refused ${x.refused}${cpu}\n`);
  }, 5000);
  try {
    await until(() => s.sum().up >= n, what, 300_000);
  } finally {
    clearInterval(progress);
  }
  return (performance.now() - t0) / 1000;
}

async function cpuOver(pid: number, seconds: number): Promise<number> {
  const c0 = cpuSeconds(pid);
  const t0 = performance.now();
  await Bun.sleep(seconds * 1000); // a measurement window, not a synchronisation
  return (cpuSeconds(pid) - c0) / ((performance.now() - t0) / 1000);
}

/** p50 and p90 of `n` round trips of `frame` over one kept WebSocket to the hub (µs via ms). */
async function roundTrips(sock: string, frame: string, n: number): Promise<{ p50: number; p90: number; last: string; all: number[] }> {
  const c = await WsClient.connect(sock);
  const times: number[] = [];
  let last = "";
  for (let i = 0; i < n + 20; i++) {
    const t0 = performance.now();
    const r = await c.ask(frame);
    if (i >= 20) times.push(performance.now() - t0);
    last = r.final + r.out;
  }
  c.close();
  const s = sorted(times);
  return { p50: pct(s, 50), p90: pct(s, 90), last, all: times };
}

export async function benchFleet(o: BenchOptions): Promise<BenchResult> {
  const total = Math.max(PROCS, Math.round(15_000 * o.scale));
  const rows: Row[] = [];
  const notes: string[] = [];
  const scratch = makeEnv();
  const keyDirs: string[] = [];
  for (let k = 0; k < PROCS; k++) {
    const dir = join(scratch.dir, `key${k}`);
    mkdirSync(dir);
    const c = await generateCertificate({ commonName: `sim ${k}` });
    writeFileSync(join(dir, "cert.pem"), c.certPem);
    writeFileSync(join(dir, "key.pem"), c.keyPem, { mode: 0o600 });
    keyDirs.push(dir);
  }

  let hub = await startHub();
  const sims: Sims[] = [];
  try {
    // baselines: the same hub with no node
    await Bun.sleep(1000);
    const rss0 = rss(hub.proc.pid);
    const fd0 = fdCount(hub.proc.pid);
    const cpu0 = await cpuOver(hub.proc.pid, 10);
    const token = pyctl(hub, ["join-token"]).trim().split("\n").at(-1)!.split(" ")[4]!;

    // first join of every node (enrollment with the token)
    const s = new Sims(hub, keyDirs, total, token);
    sims.push(s);
    const load0 = loadAverage();
    const cpuEnroll0 = cpuSeconds(hub.proc.pid);
    const enroll = await waitAllUp(s, total, `${total} nodes to enroll`, hub.proc.pid);
    const perEnroll = (cpuSeconds(hub.proc.pid) - cpuEnroll0) / total;
    const enrollRetries = s.sum().retries;
    rows.push({ figure: `${total.toLocaleString("en-US")} nodes enrolled (first join, TLS, token)`, value: `${enroll.toFixed(1)} s`, target: "≤ 30 s", met: enroll <= 30 });
    rows.push({ figure: "hub CPU per node joining (TLS handshake, hello, enrollment)", value: fmtMs(perEnroll * 1000), ratio: `${(perEnroll * total).toFixed(1)} s of one core for all` });
    notes.push(`enrollment: ${enrollRetries} retry-after answers; the simulator's keys: ${PROCS} (one per process: the hub binds ${total} ids); load average before: ${load0}, after: ${loadAverage()}`);

    await Bun.sleep(2000);
    const rss1 = rss(hub.proc.pid);
    const fd1 = fdCount(hub.proc.pid);
    rows.push({ figure: "hub RSS with all nodes", value: `${(rss1 / MB).toFixed(0)} MB`, baseline: `${(rss0 / MB).toFixed(0)} MB (no node)`, ratio: `${(((rss1 - rss0) / total) / 1024).toFixed(1)} KB/node`, target: "≤ 500 MB", met: rss1 <= 500 * MB });
    rows.push({ figure: "hub descriptors with all nodes", value: String(fd1), baseline: `${fd0} (no node)`, ratio: `${((fd1 - fd0) / total).toFixed(2)} per node`, target: "1 per node", met: (fd1 - fd0) / total < 1.05 });
    const welcomedBefore = s.sum().welcomed;
    const cpu1 = await cpuOver(hub.proc.pid, 30);
    const dropsIdle = s.sum().welcomed - welcomedBefore;
    rows.push({ figure: "hub CPU, all nodes heartbeating (10 s), 30 s window", value: `${(cpu1 * 100).toFixed(1)}% of a core`, baseline: `${(cpu0 * 100).toFixed(1)}% (no node)`, target: "≤ 10%", met: cpu1 <= 0.1 });
    notes.push(`links dropped and redialed during the idle window: ${dropsIdle}`);

    // one node among all of them
    const one = await roundTrips(hub.sock, `ls sim0-7`, 300);
    if (one.last !== "sl") notes.push(`unexpected answer from sim0-7: ${one.last.slice(0, 80)}`);

    // the hub killed and restarted: every node comes back by itself
    const before = s.sum().welcomed;
    hub.proc.kill("SIGKILL");
    await hub.proc.exited;
    await until(() => s.sum().up === 0, "every link to notice", 60_000);
    const retries0 = s.sum().retries;
    hub = await startHub({ ...scratch, dir: scratch.dir, sock: hub.sock, home: hub.home, env: hub.env }, hub.port);
    const cpuBack0 = cpuSeconds(hub.proc.pid);
    const back = await waitAllUp(s, total, `${total} nodes to come back`, hub.proc.pid);
    const perBack = (cpuSeconds(hub.proc.pid) - cpuBack0) / total;
    await Bun.sleep(3000);
    const twice = s.sum().welcomed - before - total;
    rows.push({ figure: "all back after a hub SIGKILL + restart (mTLS)", value: `${back.toFixed(1)} s`, baseline: `${enroll.toFixed(1)} s (first join)`, ratio: ratio(back, enroll), target: "≤ 60 s, none dropped", met: back <= 60 && twice <= 0 });
    rows.push({ figure: "hub CPU per node coming back (mTLS, no token)", value: fmtMs(perBack * 1000), baseline: `${fmtMs(perEnroll * 1000)} (first join)`, ratio: `${(perBack * total).toFixed(1)} s of one core for all` });
    notes.push(`after the restart: ${s.sum().retries - retries0} retry-after answers, ${Math.max(0, twice)} nodes had to come back twice, hub RSS ${(rss(hub.proc.pid) / MB).toFixed(0)} MB`);

    // baseline of the one-node request: a hub with that one node only
    const h1 = await startHub();
    try {
      const t1 = pyctl(h1, ["join-token"]).trim().split("\n").at(-1)!.split(" ")[4]!;
      const s1 = new Sims(h1, [keyDirs[0]!], 8, t1);
      sims.push(s1);
      await waitAllUp(s1, 8, "the one-node hub's node");
      const base = await roundTrips(h1.sock, `ls sim0-7`, 300);
      rows.push({ figure: `request to one node among ${total.toLocaleString("en-US")} (ls NODE), p50`, value: fmtUs(one.p50), baseline: `${fmtUs(base.p50)} (a hub with that node only)`, ratio: ratio(one.p50, base.p50), target: "≤ 2x", met: one.p50 <= 2 * base.p50 });
      s1.kill();

      // a real node: a cell on its session vs the same cell on a local session of the hub
      const ne = makeEnv();
      const joinCmd = pyctl(h1, ["join-token"]).trim().split("\n").at(-1)!.split(" ").slice(2);
      const node = Bun.spawn([BIN, "join", ...joinCmd, "--id", "real-1"], { env: { ...ne.env, PYTHOND_SPARE: "0" }, cwd: ne.dir, stdout: "ignore", stderr: "pipe" });
      try {
        let err = "";
        void (async () => {
          for await (const c of node.stderr as ReadableStream<Uint8Array>) err += new TextDecoder().decode(c);
        })();
        await until(() => err.includes("joined:"), "the real node to join", 30_000);
        const pysh = (args: string[]) => Bun.spawnSync([PYSH, ...args], { env: h1.env, stdout: "pipe" });
        pysh(["new", "real-1/s"]);
        pysh(["new", "local"]);
        // in turns of 50, so both see the same phases of this (shared) machine
        const rt: number[] = [];
        const lt: number[] = [];
        for (let turn = 0; turn < 10; turn++) {
          rt.push(...(await roundTrips(h1.sock, "run real-1/s\n1+1", 50)).all);
          lt.push(...(await roundTrips(h1.sock, "run local\n1+1", 50)).all);
        }
        const remote = { p50: pct(sorted(rt), 50), p90: pct(sorted(rt), 90) };
        const local = { p50: pct(sorted(lt), 50), p90: pct(sorted(lt), 90) };
        rows.push({ figure: "cell on a node's session (run node/s, kept WebSocket), p50", value: fmtUs(remote.p50), baseline: `${fmtUs(local.p50)} (same cell, hub's own session)`, ratio: ratio(remote.p50, local.p50) });
        notes.push(`cell p90: node ${fmtMs(remote.p90)}, local ${fmtMs(local.p90)}`);
        pysh(["kill", "real-1/s"]);
        pysh(["kill", "local"]);
      } finally {
        node.kill("SIGKILL");
      }
    } finally {
      h1.proc.kill("SIGKILL");
    }
  } finally {
    for (const s of sims) s.kill();
    hub.proc.kill("SIGKILL");
  }
  return { id: "fleet", title: `fleet: ${total.toLocaleString("en-US")} node links over TLS on one hub (${PROCS} simulator processes)`, rows, notes };
}

if (import.meta.main) await standalone(benchFleet);
