/**
 * Argument parsing for the fleet commands of pysh (sh, job, shell, put, get, forward). Hand-made
 * like the rest of pysh: options come before the first plain word (for `sh`, the command's words
 * follow and are never options of ours), `--` ends them, `--opt=value` and `--opt value` both work.
 */
import { PythondError } from "../../protocol/errors.ts";

export interface Parsed {
  positional: string[];
  opts: Record<string, string | true>;
  /** Repeated valued options (`--env K=V --env K2=V2`). */
  multi: Record<string, string[]>;
  /** Everything after the first command word or `--` (sh's command). */
  rest: string[];
}

export interface ArgSpec {
  valued?: readonly string[];
  switches?: readonly string[];
  repeated?: readonly string[];
  /** Short spellings: `-r` → `recursive`, `-l` → `selector`. */
  short?: Record<string, string>;
  /** Positionals taken before the rest starts (sh: 1, the node; 0 with --all/-l). */
  positionals: number | ((opts: Record<string, string | true>) => number);
  usage: string;
}

export function parseArgs(argv: string[], spec: ArgSpec): Parsed {
  const p: Parsed = { positional: [], opts: {}, multi: {}, rest: [] };
  const want = () => (typeof spec.positionals === "number" ? spec.positionals : spec.positionals(p.opts));
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") {
      i++;
      break;
    }
    if (a.startsWith("-") && a !== "-" && !/^-\d/.test(a)) {
      const long = a.startsWith("--");
      const eq = a.indexOf("=");
      let key = long ? a.slice(2, eq < 0 ? undefined : eq) : a.slice(1, 2);
      if (!long) key = spec.short?.[key] ?? `-${key}`;
      const inline = eq >= 0 ? a.slice(eq + 1) : !long && a.length > 2 ? a.slice(2) : undefined;
      if (spec.switches?.includes(key)) {
        p.opts[key] = true;
        continue;
      }
      if (spec.valued?.includes(key) || spec.repeated?.includes(key)) {
        const v = inline ?? argv[++i];
        if (v === undefined) throw new PythondError("usage", `${spec.usage}\n(--${key} needs a value)`);
        if (spec.repeated?.includes(key)) (p.multi[key] ??= []).push(v);
        else p.opts[key] = v;
        continue;
      }
      throw new PythondError("usage", `${spec.usage}\n(unknown option ${a})`);
    }
    if (p.positional.length < want()) {
      p.positional.push(a);
      continue;
    }
    break;
  }
  p.rest = argv.slice(i);
  return p;
}

/** `--timeout 5` → 5000 ms; a clear error for anything else. */
export function seconds(v: string | true | undefined, what: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v === true || !Number.isFinite(n) || n <= 0) throw new PythondError("usage", `${what} takes a number of seconds > 0 (got ${String(v)})`);
  return Math.round(n * 1000);
}

/** `--env K=V` pairs. */
export function envPairs(list: string[] | undefined): Record<string, string> | undefined {
  if (!list?.length) return undefined;
  const env: Record<string, string> = {};
  for (const kv of list) {
    const eq = kv.indexOf("=");
    if (eq <= 0 || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(kv.slice(0, eq))) throw new PythondError("usage", `--env takes NAME=VALUE (got '${kv}')`);
    env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return env;
}

/** A human size: 1.5 MB. */
export function size(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ["kB", "MB", "GB", "TB"];
  let v = n;
  let u = -1;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}
