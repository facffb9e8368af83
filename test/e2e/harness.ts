/**
 * End-to-end harness: a real dist/pythond daemon with a private runtime directory, socket and
 * HOME per test, real Python workers, real sockets. Everything waits for conditions (a line on
 * the daemon's stderr, a socket answering, a pid gone), never for time. Cleanup with
 * `await using d = await startDaemon()`: stops the daemon and kills, by pid, every worker it
 * recorded and the daemon itself.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const ROOT = join(import.meta.dir, "..", "..");
export const BIN = join(ROOT, "dist", "pythond");
export const PYSH = join(ROOT, "dist", "pysh");
export const PYCTL = join(ROOT, "dist", "pyctl");

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface Env {
  dir: string;
  sock: string;
  home: string;
  env: Record<string, string>;
}

export function makeEnv(): Env {
  const dir = mkdtempSync(join(tmpdir(), "pyd-"));
  const home = join(dir, "home");
  mkdirSync(home);
  const sock = join(dir, "run", "pythond.sock");
  const env: Record<string, string> = { ...(process.env as Record<string, string>), PYTHOND_SOCK: sock, HOME: home, NO_COLOR: "1" };
  delete env.PYTHOND_HOST;
  delete env.PYTHOND_TOKEN;
  return { dir, sock, home, env };
}

export async function exec(
  cmd: string[],
  e: Env,
  opts: { stdin?: string | Uint8Array; cwd?: string; env?: Record<string, string> } = {},
): Promise<RunResult> {
  const p = Bun.spawn(cmd, {
    env: { ...e.env, ...opts.env },
    cwd: opts.cwd ?? e.dir,
    stdin: opts.stdin === undefined ? "ignore" : new Blob([opts.stdin]),
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, stdout, stderr };
}

/** Reads a process's stderr line by line until one matches (or the process ends). */
export class LineWatcher {
  text = "";
  private waiters: Array<{ re: RegExp; resolve(m: RegExpMatchArray): void; reject(e: Error): void }> = [];
  private ended = false;

  constructor(stream: ReadableStream<Uint8Array>) {
    void this.pump(stream);
  }

  private async pump(stream: ReadableStream<Uint8Array>) {
    const dec = new TextDecoder();
    for await (const chunk of stream) {
      this.text += dec.decode(chunk, { stream: true });
      this.check();
    }
    this.ended = true;
    for (const w of this.waiters) w.reject(new Error(`stream ended before ${w.re}:\n${this.text}`));
    this.waiters = [];
  }

  private check() {
    this.waiters = this.waiters.filter((w) => {
      const m = this.text.match(w.re);
      if (m) w.resolve(m);
      return !m;
    });
  }

  waitFor(re: RegExp): Promise<RegExpMatchArray> {
    const m = this.text.match(re);
    if (m) return Promise.resolve(m);
    if (this.ended) return Promise.reject(new Error(`stream ended before ${re}:\n${this.text}`));
    return new Promise((resolve, reject) => this.waiters.push({ re, resolve, reject }));
  }
}

export class Daemon {
  proc!: ReturnType<typeof Bun.spawn>;
  log!: LineWatcher;
  constructor(readonly e: Env) {}

  get pid(): number {
    return this.proc.pid;
  }

  async start(args: string[] = []): Promise<this> {
    this.proc = Bun.spawn([BIN, "daemon", ...args], { env: this.e.env, cwd: this.e.dir, stdout: "pipe", stderr: "pipe" });
    this.log = new LineWatcher(this.proc.stderr as ReadableStream<Uint8Array>);
    await this.log.waitFor(/listening on/);
    return this;
  }

  pysh(args: string[], opts: { stdin?: string | Uint8Array; cwd?: string; env?: Record<string, string> } = {}) {
    return exec([PYSH, ...args], this.e, opts);
  }

  pyctl(args: string[], opts: { stdin?: string; env?: Record<string, string> } = {}) {
    return exec([PYCTL, ...args], this.e, opts);
  }

  /** Worker pids recorded in the runtime directory. */
  workerPids(): number[] {
    const dir = join(this.e.dir, "run", "pythond", "sessions");
    try {
      return readdirSync(dir)
        .filter((f) => f.endsWith(".json"))
        .map((f) => (JSON.parse(readFileSync(join(dir, f), "utf8")) as { pid: number }).pid);
    } catch {
      return [];
    }
  }

  async [Symbol.asyncDispose]() {
    const pids = this.workerPids();
    try {
      this.proc.kill("SIGKILL");
      await this.proc.exited;
    } catch {}
    for (const pid of pids) killGroup(pid);
    rmSync(this.e.dir, { recursive: true, force: true });
  }
}

/** Where the daemon keeps its warm spare's socket and record (src/sessions/spare.ts). */
export const sparesDir = (d: Daemon) => join(d.e.dir, "run", "pythond", "spares");

export function killGroup(pid: number) {
  try {
    process.kill(-pid, "SIGKILL");
  } catch {}
  try {
    process.kill(pid, "SIGKILL");
  } catch {}
}

export async function startDaemon(args: string[] = [], e: Env = makeEnv()): Promise<Daemon> {
  return new Daemon(e).start(args);
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // a zombie is not alive for our purposes
  try {
    return !/^\S+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

/** Waits until cond() is true, checking on each event-loop turn with a short back-off. */
export async function until(cond: () => boolean | Promise<boolean>, what: string, limitMs = 20_000): Promise<void> {
  const start = Date.now();
  let delay = 5;
  while (!(await cond())) {
    if (Date.now() - start > limitMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 100);
  }
}

/** A raw WebSocket client on the daemon's socket with the given subprotocols. */
export async function rawClient(sock: string, protocols: string[] = ["pythond.0.4"]) {
  const ws = new WebSocket(`ws+unix://${sock}`, protocols);
  ws.binaryType = "arraybuffer";
  const inbox: Array<string | ArrayBuffer> = [];
  const waiters: Array<(m: string | ArrayBuffer) => void> = [];
  let closed: { code: number; reason: string } | null = null;
  const closeWaiters: Array<(c: { code: number; reason: string }) => void> = [];
  ws.onmessage = (ev) => {
    const w = waiters.shift();
    if (w) w(ev.data);
    else inbox.push(ev.data);
  };
  ws.onclose = (ev) => {
    closed = { code: ev.code, reason: ev.reason };
    for (const w of closeWaiters) w(closed);
  };
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = () => reject(new Error("connect failed"));
  });
  return {
    ws,
    protocol: ws.protocol,
    send: (m: string | Uint8Array) => ws.send(m),
    next: () => new Promise<string | ArrayBuffer>((resolve) => (inbox.length ? resolve(inbox.shift()!) : waiters.push(resolve))),
    async ask(m: string): Promise<string> {
      ws.send(m);
      for (;;) {
        const r = await this.next();
        if (typeof r === "string") return r;
      }
    },
    closed: () => new Promise<{ code: number; reason: string }>((resolve) => (closed ? resolve(closed) : closeWaiters.push(resolve))),
    close: () => ws.close(),
  };
}

/** The daemon's access.log ("" before it exists). */
export function accessLog(d: Daemon): string {
  try {
    return readFileSync(join(d.e.dir, "run", "pythond", "access.log"), "utf8");
  } catch {
    return "";
  }
}

/**
 * The access log once it has a line matching `re`: the daemon writes its lines within ~20 ms
 * (src/daemon/access-log.ts), so a test waits for the line it expects instead of reading at once.
 */
export async function accessLogWith(d: Daemon, re: RegExp): Promise<string> {
  await until(() => re.test(accessLog(d)), `an access-log line matching ${re}`);
  return accessLog(d);
}
