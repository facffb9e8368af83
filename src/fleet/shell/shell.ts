/**
 * Interactive shells on a node (`pysh shell`): a login shell in a real PTY (pty.ts: Bun's
 * built-in terminal; bun-pty where Bun has none, i.e. ConPTY on Windows), owned by the node rather than by a viewer, so it outlives the link that opened it.
 *
 * Viewers come and go: each gets the recent screen (the last `replayBytes` of output) on attach,
 * then everything live; any number may watch, read-only ones cannot type or resize. When the last
 * viewer leaves, the shell lingers for `lingerMs` (default 10 min) and is then hung up (SIGHUP to
 * its process group, as a closed terminal does; SIGKILL 3 s later). Its exit code (128+n for a
 * signal) goes to every viewer still there.
 *
 * Output to viewers is pushed as the PTY produces it; pacing a slow viewer is the wiring's job
 * (a node link stream with credits): a PTY cannot be paused without stalling every other viewer.
 */
import { constants as osc } from "node:os";
import { statSync } from "node:fs";
import { PythondError } from "../../protocol/errors.ts";
import { defaultShell } from "../exec/job.ts";
import { openPty, type Pty } from "./pty.ts";

export interface ShellSpec {
  cwd?: string;
  cols?: number;
  rows?: number;
  /** The shell binary (default: $SHELL if executable, else /bin/sh), started as a login shell. */
  shell?: string;
  env?: Record<string, string>;
  /** How long a shell with no viewer lives on (default 10 min). */
  lingerMs?: number;
  /** Output kept for a viewer that attaches later (default 64 KiB). */
  replayBytes?: number;
}

export interface ShellExit {
  exit: number;
  code: number | null;
  signal: string | null;
}

export interface Viewer {
  output(bytes: Uint8Array): void;
  /** The shell ended (after its last output). */
  ended(exit: ShellExit): void;
}

export interface ShellInfo {
  id: string;
  pid: number;
  command: string;
  cwd: string;
  cols: number;
  rows: number;
  viewers: number;
  startedAt: number;
  /** When the last viewer left (null while someone watches). */
  idleSince: number | null;
}

export const LINGER_MS = 600_000;
const REPLAY = 64 << 10;
const HANGUP_GRACE_MS = 3000;

export class Shell {
  readonly startedAt = Date.now();
  readonly pid: number;
  readonly command: string;
  readonly cwd: string;
  cols: number;
  rows: number;
  result?: ShellExit;
  readonly done: Promise<ShellExit>;
  private readonly pty: Pty;
  private readonly viewers = new Set<ViewerHandle>();
  private replay: Uint8Array[] = [];
  private replaySize = 0;
  private idleSince: number | null = Date.now();
  private linger?: ReturnType<typeof setTimeout>;
  private readonly lingerMs: number;
  private readonly replayMax: number;

  constructor(
    readonly id: string,
    spec: ShellSpec = {},
  ) {
    this.cols = spec.cols ?? 80;
    this.rows = spec.rows ?? 24;
    this.lingerMs = spec.lingerMs ?? LINGER_MS;
    this.replayMax = spec.replayBytes ?? REPLAY;
    this.cwd = spec.cwd ?? process.env.HOME ?? "/";
    let isDir = false;
    try {
      isDir = statSync(this.cwd).isDirectory();
    } catch {
      throw new PythondError("not_found", `no such directory: ${this.cwd}`);
    }
    if (!isDir) throw new PythondError("not_directory", `not a directory: ${this.cwd}`);
    this.command = spec.shell ?? (process.platform === "win32" ? process.env.COMSPEC || "cmd.exe" : defaultShell());
    const env = { ...(process.env as Record<string, string>), TERM: "xterm-256color", ...spec.env };
    try {
      // a login shell where that means something (cmd.exe and PowerShell on Windows have no -l)
      const argv = process.platform === "win32" ? [this.command] : [this.command, "-l"];
      this.pty = openPty(argv, { cwd: this.cwd, env, cols: this.cols, rows: this.rows, data: (bytes) => this.onOutput(bytes) });
    } catch (e) {
      throw new PythondError("no_shell", `cannot start ${this.command}: ${(e as Error).message}`);
    }
    this.pid = this.pty.pid;
    this.armLinger();
    this.done = this.finish();
  }

  private async finish(): Promise<ShellExit> {
    const { code, signal } = await this.pty.exited;
    clearTimeout(this.linger);
    const n = signal ? ((osc.signals as Record<string, number>)[signal] ?? 0) : 0;
    const result: ShellExit = { exit: signal ? 128 + n : (code ?? 255), code, signal };
    this.result = result;
    this.pty.close();
    for (const v of [...this.viewers]) {
      this.viewers.delete(v);
      v.viewer.ended(result);
    }
    return result;
  }

  private onOutput(bytes: Uint8Array): void {
    // Bun reuses nothing here, but keep our own copy for the replay ring to be safe
    const copy = new Uint8Array(bytes);
    this.replay.push(copy);
    this.replaySize += copy.length;
    while (this.replaySize - this.replay[0]!.length >= this.replayMax) this.replaySize -= this.replay.shift()!.length;
    for (const v of this.viewers) v.viewer.output(copy);
  }

  /** Adds a viewer: the recent screen first, then live output. */
  attach(viewer: Viewer, opts: { readOnly?: boolean } = {}): ViewerHandle {
    if (this.result) throw new PythondError("not_found", `shell '${this.id}' has ended (exit ${this.result.exit})`);
    const h = new ViewerHandle(this, viewer, !!opts.readOnly);
    if (this.replaySize > 0) viewer.output(Buffer.concat(this.replay));
    this.viewers.add(h);
    this.idleSince = null;
    clearTimeout(this.linger);
    return h;
  }

  /** @internal (ViewerHandle) */
  leave(h: ViewerHandle): void {
    if (!this.viewers.delete(h) || this.viewers.size > 0 || this.result) return;
    this.idleSince = Date.now();
    this.armLinger();
  }

  private armLinger(): void {
    clearTimeout(this.linger);
    this.linger = setTimeout(() => this.hangup(), this.lingerMs);
  }

  /** @internal */
  write(bytes: Uint8Array | string): void {
    if (!this.result) this.pty.write(bytes);
  }

  /** @internal */
  resize(cols: number, rows: number): void {
    if (!(cols > 0 && rows > 0 && cols < 10_000 && rows < 10_000)) throw new PythondError("usage", `bad size ${cols}x${rows}`);
    this.cols = cols;
    this.rows = rows;
    if (!this.result) this.pty.resize(cols, rows);
  }

  /** Ends the shell as a closed terminal would: SIGHUP to its group, SIGKILL if it lingers. */
  hangup(): void {
    if (this.result) return;
    const group = (sig: NodeJS.Signals) => this.pty.hangup(sig);
    group("SIGHUP");
    group("SIGCONT"); // a stopped job would never see the hangup
    setTimeout(() => group("SIGKILL"), HANGUP_GRACE_MS).unref?.();
  }

  info(): ShellInfo {
    return {
      id: this.id,
      pid: this.pid,
      command: this.command,
      cwd: this.cwd,
      cols: this.cols,
      rows: this.rows,
      viewers: this.viewers.size,
      startedAt: this.startedAt,
      idleSince: this.idleSince,
    };
  }
}

/** One viewer's handle: type, resize, leave. */
export class ViewerHandle {
  private gone = false;

  constructor(
    private readonly shell: Shell,
    readonly viewer: Viewer,
    readonly readOnly: boolean,
  ) {}

  write(bytes: Uint8Array | string): void {
    if (this.readOnly) throw new PythondError("usage", "this viewer is read-only");
    if (!this.gone) this.shell.write(bytes);
  }

  resize(cols: number, rows: number): void {
    if (this.readOnly) throw new PythondError("usage", "this viewer is read-only");
    if (!this.gone) this.shell.resize(cols, rows);
  }

  detach(): void {
    if (this.gone) return;
    this.gone = true;
    this.shell.leave(this);
  }
}
