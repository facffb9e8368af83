/**
 * ACCESS lines (REFERENCE "Access log"): one per event, to `access.log` (0600) and the daemon's
 * stderr. Values are escaped so nothing a client sends can add spaces, fields or lines. Never
 * tokens, never code: callers pass only the fields below.
 */
import { chmodSync, closeSync, fstatSync, openSync, statSync, writeSync } from "node:fs";
import { join } from "node:path";

export type AccessEvent = "connect" | "auth" | "command" | "result" | "attach" | "detach" | "disconnect" | "session";

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

export function escapeValue(v: string): string {
  return v.replace(/[^A-Za-z0-9._:/@\-[\]]/g, (c) =>
    Array.from(new TextEncoder().encode(c), (b) => "%" + b.toString(16).toUpperCase().padStart(2, "0")).join(""),
  );
}

export class AccessLog {
  private path: string;
  private fd = -1;
  private checkedAt = 0;

  constructor(runtime: string, private readonly mirror: (line: string) => void = (l) => process.stderr.write(l + "\n")) {
    this.path = join(runtime, "access.log");
    closeSync(openSync(this.path, "a", 0o600));
    chmodSync(this.path, 0o600);
  }

  write(event: AccessEvent, fields: AccessFields): void {
    const parts = [`ACCESS ts=${new Date().toISOString()}`, `event=${event}`];
    const keys = [...ORDER, ...Object.keys(fields).filter((k) => !ORDER.includes(k))];
    for (const k of keys) {
      if (!(k in fields) && !ORDER.includes(k)) continue;
      const v = fields[k];
      parts.push(`${k}=${escapeValue(v === undefined ? "" : String(v))}`);
    }
    const line = parts.join(" ");
    try {
      writeSync(this.file(), line + "\n");
    } catch {
      // a full disk must not stop the daemon; stderr still has the line
    }
    this.mirror(line);
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
