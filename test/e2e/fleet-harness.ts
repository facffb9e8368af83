/**
 * The fleet end to end: a hub (a daemon with a TLS listener on a loopback port 0, heartbeats every
 * second) and real `pythond join` node processes, each with its own HOME, socket and runtime
 * directory, dialing the hub over loopback. A TCP relay between a node and the hub can stop
 * forwarding without closing anything (a silent link cut) and heal again.
 */
import { rmSync } from "node:fs";
import type { Socket, TCPSocketListener } from "bun";
import { BIN, Daemon, exec, LineWatcher, makeEnv, PYCTL, PYSH, type Env, type RunResult } from "./harness.ts";
import { startListening, type Listening } from "./remote-harness.ts";

export { accessLog, accessLogWith } from "./remote-harness.ts";

export class Hub {
  constructor(
    readonly l: Listening,
    readonly args: string[],
  ) {}

  static async start(extra: string[] = [], e: Env = makeEnv(), port = 0): Promise<Hub> {
    const args = ["--listen", `127.0.0.1:${port}`, "--tls", "--show-token", "--heartbeat", "1", ...extra];
    return new Hub(await startListening(args, e), args);
  }

  get d(): Daemon {
    return this.l.d;
  }

  get port(): number {
    return this.l.port;
  }

  pysh(args: string[], opts: { stdin?: string } = {}): Promise<RunResult> {
    return this.d.pysh(args, opts);
  }

  pyctl(args: string[]): Promise<RunResult> {
    return this.d.pyctl(args);
  }

  /** `pyctl join-token …`: the token and the whole join command it printed. */
  async joinToken(args: string[] = []): Promise<{ token: string; fingerprint: string; command: string[]; stdout: string }> {
    const r = await this.pyctl(["join-token", ...args]);
    if (r.code !== 0) throw new Error(`join-token failed: ${r.stderr}`);
    const command = r.stdout.trim().split("\n").at(-1)!.split(" ");
    return { token: command[command.indexOf("--token") + 1]!, fingerprint: command[command.indexOf("--fingerprint") + 1] ?? "", command, stdout: r.stdout };
  }

  /** The state of node `id` as `pysh nodes --json` says. */
  async node(id: string): Promise<Record<string, unknown> | undefined> {
    const r = await this.pysh(["nodes", "--json"]);
    return (JSON.parse(r.stdout) as Array<Record<string, unknown>>).find((n) => n.id === id);
  }

  /** Restarts the hub on the same port and HOME (after a kill). */
  async restart(): Promise<Hub> {
    const args = this.args.map((a) => (a === "127.0.0.1:0" ? `127.0.0.1:${this.port}` : a));
    const l = await startListening(args, this.d.e);
    return new Hub(l, args);
  }

  async [Symbol.asyncDispose]() {
    await this.d[Symbol.asyncDispose]();
  }
}

/**
 * Writes a file of `mib` MiB: one random MiB repeated, each copy marked with its index (so a chunk
 * landing at the wrong offset shows); for big transfers in tests.
 */
export async function blocksFile(path: string, mib: number): Promise<string> {
  const block = crypto.getRandomValues(new Uint8Array(1 << 20));
  const w = Bun.file(path).writer();
  for (let i = 0; i < mib; i++) {
    block[0] = i & 0xff;
    block[1] = i >> 8;
    w.write(block);
  }
  await w.end();
  return path;
}

/** A machine that joins a hub: `pythond join …` in the foreground, with its own HOME and socket. */
export class Node {
  readonly e: Env;
  proc?: ReturnType<typeof Bun.spawn>;
  log!: LineWatcher;

  constructor(e?: Env) {
    this.e = e ?? makeEnv();
  }

  /** Starts `pythond join <args>`; returns once it says joined (or the process ends). */
  async join(args: string[], opts: { waitJoined?: boolean } = {}): Promise<this> {
    this.proc = Bun.spawn([BIN, "join", ...args], { env: this.e.env, cwd: this.e.dir, stdout: "pipe", stderr: "pipe" });
    this.log = new LineWatcher(this.proc.stderr as ReadableStream<Uint8Array>);
    if (opts.waitJoined !== false) await this.log.waitFor(/joined: /);
    return this;
  }

  /** Runs `pythond join` to its end (a refused join), returning what it said. */
  async joinFails(args: string[]): Promise<RunResult> {
    return exec([BIN, "join", ...args], this.e);
  }

  get pid(): number {
    return this.proc!.pid;
  }

  pysh(args: string[]): Promise<RunResult> {
    return exec([PYSH, ...args], this.e);
  }

  pyctl(args: string[]): Promise<RunResult> {
    return exec([PYCTL, ...args], this.e);
  }

  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    this.proc?.kill(signal);
    await this.proc?.exited;
  }

  workerPids(): number[] {
    return new Daemon(this.e).workerPids();
  }

  async [Symbol.asyncDispose]() {
    const pids = this.workerPids();
    await this.kill().catch(() => {});
    for (const pid of pids) {
      try {
        process.kill(-pid, "SIGKILL");
      } catch {}
    }
    rmSync(this.e.dir, { recursive: true, force: true });
  }
}

interface RelayConn {
  peer?: Socket<RelayConn>;
  /** Bytes for the peer that arrived before it was connected. */
  pending: Uint8Array[];
  /** Bytes this socket could not take yet (a full send buffer): written on its drain, in order. */
  backlog: Uint8Array[];
}

/** Writes all of `d` to `to`, keeping what its send buffer cannot take for its drain. */
function forward(to: Socket<RelayConn>, d: Uint8Array): void {
  if (to.data.backlog.length > 0) return void to.data.backlog.push(d.slice());
  const n = to.write(d);
  if (n < d.length) to.data.backlog.push(d.slice(Math.max(n, 0)));
}

function drainBacklog(s: Socket<RelayConn>): void {
  const q = s.data.backlog;
  while (q.length > 0) {
    const n = s.write(q[0]!);
    if (n < q[0]!.length) {
      q[0] = q[0]!.subarray(Math.max(n, 0));
      return;
    }
    q.shift();
  }
}

/**
 * A TCP relay on loopback (node -> relay -> hub). `stall()` makes it a black hole: bytes both ways
 * are dropped and closes are not passed on, as when a network path dies without a FIN or RST;
 * `heal()` forwards again (new connections work; old ones are beyond saving, as on a real network).
 * While it forwards it loses nothing: what a socket cannot take at once waits for its drain (it
 * used to drop the rest of a partial write, which broke TLS on a new link during a big transfer).
 */
export class Relay {
  private server!: TCPSocketListener<RelayConn>;
  stalled = false;

  static async start(targetPort: number): Promise<Relay> {
    const r = new Relay();
    r.server = Bun.listen<RelayConn>({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        open: (s) => {
          s.data = { pending: [], backlog: [] };
          void Bun.connect<RelayConn>({
            hostname: "127.0.0.1",
            port: targetPort,
            data: { peer: s, pending: [], backlog: [] },
            socket: {
              data: (u, d) => {
                if (!r.stalled && u.data.peer) forward(u.data.peer, d);
              },
              drain: (u) => drainBacklog(u),
              close: (u) => {
                if (!r.stalled) u.data.peer?.end();
              },
              error: () => {},
            },
          }).then(
            (u) => {
              s.data.peer = u;
              for (const d of s.data.pending) forward(u, d);
              s.data.pending = [];
            },
            () => s.end(),
          );
        },
        data: (s, d) => {
          if (r.stalled) return;
          if (s.data.peer) forward(s.data.peer, d);
          else s.data.pending.push(d.slice());
        },
        drain: (s) => drainBacklog(s),
        close: (s) => {
          if (!r.stalled) s.data.peer?.end();
        },
        error: () => {},
      },
    });
    return r;
  }

  get port(): number {
    return this.server.port;
  }

  stall(): void {
    this.stalled = true;
  }

  heal(): void {
    this.stalled = false;
  }

  stop(): void {
    this.server.stop(true);
  }
}

/** Runs `pythond join` for a fresh node against `hub` with a new reusable token. */
export async function joinNode(hub: Hub, id: string, extra: string[] = [], port = hub.port): Promise<Node> {
  const t = await hub.joinToken();
  const args = [`wss://127.0.0.1:${port}`, "--token", t.token, "--fingerprint", t.fingerprint, "--id", id, "--heartbeat", "1", ...extra];
  return new Node().join(args);
}
