/**
 * Helpers for the remote-access tests: a daemon with a TCP/TLS listener on a loopback port 0
 * (the bound port, token and fingerprint are read from its stderr), "client machines" (a private
 * HOME, no local daemon) that reach it through PYTHOND_HOST, and a raw WebSocket client over TLS.
 */
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { Daemon, exec, makeEnv, PYCTL, PYSH, type Env, type RunResult } from "./harness.ts";

export { accessLog, accessLogWith } from "./harness.ts";

export interface Listening {
  d: Daemon;
  port: number;
  token: string;
  /** "AA:BB:…", when TLS. */
  fingerprint: string;
  /** The server's certificate file (its HOME's ~/.pythond/tls/cert.pem). */
  certPath: string;
}

/** Starts (or restarts, on the same Env) a daemon listening on `listen`, and reads what it printed. */
export async function startListening(args: string[], e: Env = makeEnv(), scheme = "tls"): Promise<Listening> {
  const d = await new Daemon(e).start(args);
  const m = await d.log.waitFor(new RegExp(`listening on ${scheme}://(?:127\\.0\\.0\\.1|\\[::1\\]):(\\d+)`));
  const token = args.includes("--show-token") ? (await d.log.waitFor(/token=([0-9a-f]+)/))[1]! : "";
  const fingerprint = scheme === "tls" && args.includes("--show-token") ? (await d.log.waitFor(/fingerprint: ([0-9A-F:]{95})/))[1]! : "";
  return { d, port: Number(m[1]), token, fingerprint, certPath: join(e.home, ".pythond", "tls", "cert.pem") };
}

/** A machine with its own HOME (pins, client certificate) and no local daemon. */
export class ClientMachine {
  readonly e: Env = makeEnv();
  env: Record<string, string> = {};

  constructor(target?: { port: number; token: string; tls?: boolean; host?: string }) {
    if (target) this.target(target);
  }

  target(t: { port: number; token: string; tls?: boolean; host?: string }): this {
    this.env = { PYTHOND_HOST: `${t.host ?? "127.0.0.1"}:${t.port}`, PYTHOND_TOKEN: t.token, ...(t.tls === false ? {} : { PYTHOND_TLS: "1" }) };
    return this;
  }

  pysh(args: string[], env: Record<string, string> = {}): Promise<RunResult> {
    return exec([PYSH, ...args], this.e, { env: { ...this.env, ...env } });
  }

  pyctl(args: string[], env: Record<string, string> = {}): Promise<RunResult> {
    return exec([PYCTL, ...args], this.e, { env: { ...this.env, ...env } });
  }

  certPath(): string {
    return join(this.e.home, ".pythond", "tls", "cert.pem");
  }

  [Symbol.dispose]() {
    rmSync(this.e.dir, { recursive: true, force: true });
  }
}

export interface RawTls {
  ws: WebSocket;
  next(): Promise<string | Uint8Array>;
  ask(m: string): Promise<string>;
  closed: Promise<{ code: number; reason: string }>;
  close(): void;
}

/** A raw WebSocket over TLS (or plain) to a daemon's TCP port; throws when the connection fails. */
export async function rawTls(
  port: number,
  opts: { token: string; ca?: string; cert?: string; key?: string; protocols?: string[]; tls?: boolean },
): Promise<RawTls> {
  const tls = opts.tls === false ? undefined : { ca: opts.ca, cert: opts.cert, key: opts.key, checkServerIdentity: () => undefined };
  const ws = new WebSocket(`${opts.tls === false ? "ws" : "wss"}://127.0.0.1:${port}/`, {
    headers: { Authorization: `Bearer ${opts.token}` },
    protocols: opts.protocols ?? ["pythond.1"],
    tls,
  } as unknown as string[]);
  ws.binaryType = "uint8array" as WebSocket["binaryType"];
  const inbox: Array<string | Uint8Array> = [];
  const waiters: Array<(m: string | Uint8Array) => void> = [];
  let resolveClosed!: (c: { code: number; reason: string }) => void;
  const closed = new Promise<{ code: number; reason: string }>((r) => (resolveClosed = r));
  ws.onmessage = (ev) => {
    const w = waiters.shift();
    if (w) w(ev.data);
    else inbox.push(ev.data);
  };
  ws.onclose = (ev) => resolveClosed({ code: ev.code, reason: ev.reason });
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = (ev) => reject(new Error(`connect failed: ${(ev as unknown as { message?: string }).message}`));
  });
  const next = () => new Promise<string | Uint8Array>((resolve) => (inbox.length ? resolve(inbox.shift()!) : waiters.push(resolve)));
  return {
    ws,
    next,
    async ask(m: string) {
      ws.send(m);
      for (;;) {
        const r = await next();
        if (typeof r === "string") return r;
      }
    },
    closed,
    close: () => ws.close(),
  };
}
