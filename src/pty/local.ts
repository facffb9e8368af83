/**
 * The local terminal of `pysh attach`: checks, raw mode, size, and putting things back.
 *
 * Restoring the terminal is the one thing that must happen on every exit path (detach, the session
 * ending, the daemon going away, a signal, an exception), so `restore()` is idempotent and is also
 * hooked to process exit as a last resort. Raw mode goes through Bun's setRawMode, which saves the
 * original termios and puts exactly those settings back (`stty -g` is the same before and after).
 *
 * Windows: Bun's setRawMode works on a Windows console too; the session side would need ConPTY,
 * which the worker does not have yet (README, "Attach").
 */
import { PythondError } from "../protocol/errors.ts";

export interface Size {
  rows: number;
  cols: number;
}

/** Used when the terminal does not report a size at all (some serial consoles, odd emulators). */
export const FALLBACK_SIZE: Size = { rows: 24, cols: 80 };

export class LocalTerminal {
  private raw = false;
  private restored = false;
  private readonly onExit = () => this.restore();

  /** Throws a clear error when this process is not attached to a usable terminal. */
  static open(): LocalTerminal {
    if (!process.stdin.isTTY) throw new PythondError("usage", "attach needs a terminal (stdin is not a TTY)");
    if (!process.stdout.isTTY) throw new PythondError("usage", "attach needs a terminal (stdout is not a TTY)");
    const t = new LocalTerminal();
    const s = t.size();
    if (s.rows === 0 || s.cols === 0) {
      throw new PythondError("usage", `attach needs a terminal with a size (this one reports ${s.rows}x${s.cols})`);
    }
    return t;
  }

  size(): Size {
    const rows = process.stdout.rows;
    const cols = process.stdout.columns;
    if (rows === undefined || cols === undefined || Number.isNaN(rows) || Number.isNaN(cols)) return FALLBACK_SIZE;
    return { rows, cols };
  }

  enterRaw(): void {
    process.on("exit", this.onExit);
    process.stdin.setRawMode(true);
    this.raw = true;
    process.stdin.resume();
  }

  onInput(cb: (bytes: Uint8Array) => void): void {
    process.stdin.on("data", (chunk: Buffer) => cb(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length)));
  }

  /** Calls cb with the new size on every window change (SIGWINCH), ignoring 0x0 glitches. */
  onResize(cb: (s: Size) => void): void {
    process.stdout.on("resize", () => {
      const s = this.size();
      if (s.rows > 0 && s.cols > 0) cb(s);
    });
  }

  restore(): void {
    if (this.restored) return;
    this.restored = true;
    process.off("exit", this.onExit);
    if (this.raw) {
      try {
        process.stdin.setRawMode(false);
      } catch {
        // stdin already gone (the terminal closed): nothing to restore
      }
    }
    process.stdin.pause();
    process.stdin.removeAllListeners("data");
    process.stdout.removeAllListeners("resize");
  }
}
