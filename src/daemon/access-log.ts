/**
 * ACCESS lines (REFERENCE "Access log"): one per event, to `access.log` (0600) and the daemon's
 * stderr. Values are escaped so nothing a client sends can add spaces, fields or lines. Never
 * tokens, never code: callers pass only the fields below.
 */
import { chmodSync, closeSync, fstatSync, openSync, statSync, writeSync } from "node:fs";
import { join } from "node:path";

export type AccessEvent = "connect" | "auth" | "command" | "result" | "attach" | "detach" | "disconnect" | "session" | "node";

export interface AccessFields {
  conn_id?: number;
  peer?: string;
  cmd?: string;
  session?: string;
  status?: "ok" | "error";
  body_bytes?: number;
  [extra: string]: string | number | undefined;
}

const ORDER = ["conn_id", "peer", "cmd", "session", "status", "body_bytes"];

const PLAIN = /^[A-Za-z0-9._:/@\-[\]]*$/;

export function escapeValue(v: string): string {
  if (PLAIN.test(v)) return v; // nearly every value: no callback per character
  return v.replace(/[^A-Za-z0-9._:/@\-[\]]/g, (c) =>
    Array.from(new TextEncoder().encode(c), (b) => "%" + b.toString(16).toUpperCase().padStart(2, "0")).join(""),
  );
}

/** Lines wait at most this long before they are written (one write for many lines). */
const FLUSH_MS = 20;
const open = new Set<AccessLog>();

/** Writes out every log's waiting lines (before the daemon says something, and at exit). */
export function flushAccessLogs(): void {
  for (const log of open) log.flush();
}
process.on("exit", flushAccessLogs);

export class AccessLog {
  private path: string;
  private fd = -1;
  private checkedAt = 0;
  /** Events waiting to be written: [time, event, fields], formatted when written. */
  private pending: Array<[number, AccessEvent, AccessFields]> = [];
  private timer?: ReturnType<typeof setTimeout>;
  private stampMs = 0;
  private stamp = "";

  constructor(runtime: string, private readonly mirror: (text: string) => void = (t) => void process.stderr.write(t)) {
    this.path = join(runtime, "access.log");
    closeSync(openSync(this.path, "a", 0o600));
    chmodSync(this.path, 0o600);
    open.add(this);
  }

  /**
   * Queues one line (fields: a fresh object the caller does not change afterwards). Lines are
   * formatted and written together within FLUSH_MS: a busy daemon logs two lines a cell, and a
   * write each to the file and to stderr cost ~15% of its time per cell; formatting them here
   * cost ~6% more, on the way of the reply. At most FLUSH_MS of lines can be lost if the daemon
   * is killed.
   */
  write(event: AccessEvent, fields: AccessFields): void {
    this.pending.push([Date.now(), event, fields]);
    this.timer ??= setTimeout(() => this.flush(), FLUSH_MS);
  }

  private format(ms: number, event: AccessEvent, fields: AccessFields): string {
    if (ms !== this.stampMs) {
      this.stampMs = ms;
      this.stamp = new Date(ms).toISOString();
    }
    let line = `ACCESS ts=${this.stamp} event=${event}`;
    for (const k of ORDER) {
      const v = fields[k];
      line += ` ${k}=${v === undefined ? "" : escapeValue(String(v))}`;
    }
    for (const k in fields) {
      if (ORDER.includes(k)) continue;
      const v = fields[k];
      line += ` ${k}=${v === undefined ? "" : escapeValue(String(v))}`;
    }
    return line + "\n";
  }

  flush(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.pending.length === 0) return;
    let text = "";
    for (const [ms, event, fields] of this.pending) text += this.format(ms, event, fields);
    this.pending = [];
    try {
      writeSync(this.file(), text);
    } catch {
      // a full disk must not stop the daemon; stderr still has the lines
    }
    this.mirror(text);
  }

  /**
   * The log stays open (an open and close per line cost a small cell ~10% of the daemon's time);
   * at most once a second we check that it is still the file at our path, and reopen it if it was
   * moved or deleted (log rotation).
   */
  private file(): number {
    const now = Date.now();
    if (this.fd >= 0 && now - this.checkedAt < 1000) return this.fd;
    this.checkedAt = now;
    if (this.fd >= 0) {
      try {
        if (statSync(this.path).ino === fstatSync(this.fd).ino) return this.fd;
      } catch {}
      closeSync(this.fd);
      this.fd = -1;
    }
    this.fd = openSync(this.path, "a", 0o600);
    return this.fd;
  }
}
