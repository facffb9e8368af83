/**
 * The only place pysh/pyctl write to the terminal. Raw output goes to stdout with fs.writeSync:
 * it blocks while stdout is full, which stops reading from the daemon, which stops the worker:
 * memory stays bounded end to end. Errors (`ERR …`) go to stderr.
 */
import { writeSync } from "node:fs";

const enc = new TextEncoder();

function writeAll(fd: number, data: Uint8Array): void {
  let off = 0;
  while (off < data.length) {
    try {
      off += writeSync(fd, data, off, data.length - off);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EAGAIN") continue; // non-blocking pipe: spin until it drains
      if ((e as NodeJS.ErrnoException).code === "EPIPE") process.exit(141);
      throw e;
    }
  }
}

export function stdout(text: string | Uint8Array): void {
  writeAll(1, typeof text === "string" ? enc.encode(text) : text);
}

export function stderr(text: string | Uint8Array): void {
  writeAll(2, typeof text === "string" ? enc.encode(text) : text);
}

/** Prints a reply line (adds the newline). */
export function line(text: string): void {
  stdout(text + "\n");
}

/** Prints an error reply verbatim on stderr. */
export function errLine(text: string): void {
  stderr(text.endsWith("\n") ? text : text + "\n");
}

/**
 * Streams cell output with the original's rule "trailing newlines stripped, then one newline":
 * newlines at the end of a chunk are held back until more output shows they were not trailing.
 */
export class OutputStream {
  private heldNewlines = 0;
  private any = false;

  write(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    let end = chunk.length;
    while (end > 0 && chunk[end - 1] === 10) end--;
    if (end === 0) {
      if (this.any) this.heldNewlines += chunk.length;
      return;
    }
    if (this.heldNewlines) stdout("\n".repeat(this.heldNewlines));
    this.heldNewlines = chunk.length - end;
    this.any = true;
    stdout(end === chunk.length ? chunk : chunk.subarray(0, end));
  }

  end(): void {
    if (this.any) stdout("\n");
  }
}
