/**
 * What the daemon prints on stderr (access.log always gets every line in full).
 *
 * Levels (--log-level, -q = warn): error < warn < info (default) < debug.
 *  - stderr not a terminal (a supervisor, a pipe, the tests): `pythond: …` messages at info, and
 *    at info and above the full ACCESS mirror, as before: journald keeps what access.log keeps.
 *  - stderr a terminal (`npm start`, a human): the messages, and one compact line per command
 *    (`run work ok`) instead of 3-5 ACCESS lines, formatted by consola (imported only then: it
 *    costs ~35 ms, and never on a client path). --log-level debug brings the full lines back.
 *  - warn / error: only messages at that level or worse; no access lines.
 */
import { isatty } from "node:tty";
import { PythondError } from "../protocol/errors.ts";

export type LogLevel = "error" | "warn" | "info" | "debug";
const RANK: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };

export function logLevelFrom(v: string | undefined, quiet: boolean): LogLevel {
  if (v === undefined) return quiet ? "warn" : "info";
  if (!Object.hasOwn(RANK, v)) throw new PythondError("usage", `--log-level takes error, warn, info or debug (got ${JSON.stringify(v)})`);
  return v as LogLevel;
}

export interface DaemonOut {
  say(msg: string, level?: "info" | "warn" | "error"): void;
  /** The ACCESS lines as written to access.log (a batch of whole lines). */
  mirror(text: string): void;
}

export async function daemonOut(level: LogLevel = "info"): Promise<DaemonOut> {
  const rank = RANK[level];
  const tty = isatty(2);
  if (!tty || rank >= RANK.debug || rank < RANK.info) {
    return {
      say: (msg, l = "info") => void (RANK[l] <= rank && process.stderr.write(`pythond: ${msg}\n`)),
      mirror: (text) => void (rank >= RANK.info && process.stderr.write(text)),
    };
  }
  const { createConsola } = await import("consola");
  const c = createConsola({ stdout: process.stderr, stderr: process.stderr, formatOptions: { date: true, compact: true } });
  return {
    say: (msg, l = "info") => (l === "info" ? c.info(msg) : l === "warn" ? c.warn(msg) : c.error(msg)),
    mirror(text) {
      for (const raw of text.split("\n")) {
        const s = compact(raw);
        if (s) (s.bad ? c.fail : c.log)(s.text); // fail: an icon, no badge or blank line
      }
    },
  };
}

/** One ACCESS line in a few words, or null for lines a human does not need (connect, command). */
export function compact(line: string): { text: string; bad: boolean } | null {
  if (!line.startsWith("ACCESS ")) return null;
  const f: Record<string, string> = {};
  for (const m of line.matchAll(/ (\w+)=(\S*)/g)) f[m[1]!] = decodeURIComponent(m[2]!);
  const bad = f.status === "error";
  const from = f.peer ? ` from ${f.peer}` : "";
  switch (f.event) {
    case "result":
      return { text: `${f.cmd}${f.session ? ` ${f.session}` : ""} ${f.status}${from}`, bad };
    case "auth":
      return bad ? { text: `auth failed${from}: ${f.reason ?? "?"}`, bad } : null;
    case "session":
      return { text: `session ${f.session}: ${f.event_detail ?? ""}`, bad };
    case "attach":
    case "detach":
      return { text: `${f.event} ${f.session ?? ""}${from}`, bad };
    default:
      return null;
  }
}
