/**
 * A process in a pseudo-terminal, for the node's interactive shells (shell.ts). Two backends:
 *
 *   bun      Bun's built-in terminal (`Bun.spawn({ terminal })`): POSIX only; binary-safe, output
 *            pushed as it comes (~0.2 ms a keystroke round trip; BUN-NOTES.md).
 *   bun-pty  the bun-pty package (a Rust library over portable-pty: ConPTY on Windows, a Unix PTY
 *            elsewhere), where Bun has no terminal, i.e. Windows. It reads by polling every 8 ms
 *            and speaks strings: bytes that are not UTF-8 reach the shell or the viewer as U+FFFD;
 *            a shell killed by a signal is reported as exit status 1 (portable-pty says no more).
 *            PYTHOND_PTY=bun-pty chooses it anywhere, which is how it is tested here (Linux).
 *
 * bun-pty loads its native library when imported, so it is imported only when chosen.
 */
import { constants as osc } from "node:os";

export interface PtyOptions {
  cwd: string;
  env: Record<string, string>;
  cols: number;
  rows: number;
  /** Output, in order. */
  data(bytes: Uint8Array): void;
}

export interface PtyExit {
  code: number | null;
  signal: string | null;
}

export interface Pty {
  readonly pid: number;
  readonly backend: "bun" | "bun-pty";
  /** Settles once the process has exited and its last output has been delivered. */
  readonly exited: Promise<PtyExit>;
  write(bytes: Uint8Array | string): void;
  resize(cols: number, rows: number): void;
  /** Ends the process (and, where there are process groups, its group): as a closed terminal. */
  hangup(sig: NodeJS.Signals): void;
  close(): void;
}

export function ptyBackend(): "bun" | "bun-pty" {
  const chosen = process.env.PYTHOND_PTY;
  if (chosen === "bun-pty" || chosen === "bun") return chosen;
  return process.platform === "win32" ? "bun-pty" : "bun";
}

type BunPty = typeof import("bun-pty");
let bunPty: BunPty | undefined;

/** Loads what the backend needs (bun-pty's native library); once, before the first openPty. */
export async function preparePty(): Promise<void> {
  if (ptyBackend() === "bun-pty") bunPty ??= await import("bun-pty");
}

export function openPty(argv: string[], o: PtyOptions): Pty {
  if (ptyBackend() === "bun") return openBunTerminal(argv, o);
  if (!bunPty) throw new Error("preparePty() first");
  return openBunPty(bunPty, argv, o);
}

/** How long after the process exits its PTY may still hold output (a background job keeps it). */
const EOF_GRACE_MS = 500;

function signalGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    // gone
  }
}

function openBunTerminal(argv: string[], o: PtyOptions): Pty {
  let eof!: () => void;
  const closed = new Promise<void>((resolve) => (eof = resolve));
  const proc = Bun.spawn(argv, {
    cwd: o.cwd,
    env: o.env,
    terminal: { cols: o.cols, rows: o.rows, data: (_t, bytes) => o.data(bytes), exit: () => eof() },
  });
  const terminal = proc.terminal!;
  const exited = (async (): Promise<PtyExit> => {
    await proc.exited;
    // The PTY's EOF comes once every holder of the slave is gone; a background job started from
    // the shell may keep it, so the exit is reported after EOF or, at the latest, shortly after.
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([closed, new Promise<void>((r) => (timer = setTimeout(r, EOF_GRACE_MS)))]);
    clearTimeout(timer);
    const signal = (proc.signalCode as string | null) ?? null;
    return { code: signal ? null : proc.exitCode, signal };
  })();
  return {
    pid: proc.pid,
    backend: "bun",
    exited,
    write: (b) => terminal.write(b),
    resize: (c, r) => terminal.resize(c, r),
    hangup: (sig) => signalGroup(proc.pid, sig),
    close: () => {
      try {
        terminal.close();
      } catch {
        // closed already
      }
    },
  };
}

function openBunPty(lib: BunPty, argv: string[], o: PtyOptions): Pty {
  const term = lib.spawn(argv[0]!, argv.slice(1), { name: o.env.TERM ?? "xterm-256color", cols: o.cols, rows: o.rows, cwd: o.cwd, env: o.env });
  const enc = new TextEncoder();
  const dec = new TextDecoder(); // keys split mid-character are joined again (stream mode)
  term.onData((s: string) => o.data(enc.encode(s)));
  const exited = new Promise<PtyExit>((resolve) =>
    term.onExit((e: { exitCode: number; signal?: number | string }) => {
      const sig = typeof e.signal === "number" ? (Object.entries(osc.signals).find(([, n]) => n === e.signal)?.[0] ?? null) : (e.signal ?? null);
      resolve({ code: sig ? null : e.exitCode, signal: sig });
    }),
  );
  let ended = false;
  void exited.then(() => (ended = true));
  return {
    pid: term.pid,
    backend: "bun-pty",
    exited,
    write: (b) => {
      if (!ended) term.write(typeof b === "string" ? b : dec.decode(b, { stream: true }));
    },
    resize: (c, r) => {
      if (!ended) term.resize(c, r);
    },
    hangup: (sig) => {
      // portable-pty makes the child a session leader on Unix: its group is its pid. ConPTY has
      // no groups: closing the pseudo console ends what runs in it.
      if (process.platform !== "win32") signalGroup(term.pid, sig);
      else if (sig === "SIGKILL" || sig === "SIGHUP") term.kill();
    },
    close: () => {
      if (!ended) term.kill();
    },
  };
}
