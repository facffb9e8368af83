/**
 * The CLI command tables' shape and the machinery every role shares: strict option parsing
 * (an unknown flag is refused with the valid ones, before anything is done), `--help` text, and
 * the synopsis used in usage errors. `--help`, usage errors, shell completion
 * (src/cli/completion.ts) and docs/CLI.md (scripts/cli-docs.ts) are all rendered from the same
 * CmdSpec, so they cannot drift.
 *
 * Adding a command:
 *  - pysh: add a CmdSpec to src/cli/pysh-commands.ts and its handler to COMMANDS in pysh.ts;
 *  - pyctl: add a CmdSpec to src/cli/pyctl-commands.ts and a citty command to pyctl.ts whose
 *    `args` are `cittyArgs(PYCTL.<name>)` (a citty command with no table entry still gets strict
 *    flags from its citty args, but test/e2e/cli.test.ts fails until it has an entry);
 *  - then `bun scripts/cli-docs.ts` to regenerate docs/CLI.md (a test compares it).
 * test/e2e/cli.test.ts walks every table and checks --help, -h and an unknown flag per command.
 *
 * Kept free of imports beyond the error type: pysh loads it on every run.
 */
import { PythondError } from "../protocol/errors.ts";

/** What a positional argument names, for completion. */
export type ArgKind = "session" | "node" | "file" | "command" | "shell" | "text" | "subcommand";

export interface OptSpec {
  /** Placeholder of the value (`S`, `PATH`); absent: a switch. */
  value?: string;
  help: string;
  /** May be given several times (pyctl start --listen). */
  repeat?: boolean;
  /** A one-letter alias (`-q`). */
  short?: string;
}

export interface CmdSpec {
  name: string;
  /** Positionals before the options, as shown (`<name> [cell_id]`). */
  args?: string;
  /** What follows the options: code (`<code|@file|->`) for run/fire/fork. */
  tail?: string;
  summary: string;
  options?: Record<string, OptSpec>;
  /** At least one example, shown by --help and in docs/CLI.md. */
  examples: string[];
  /** Completion kind of each positional, in order (the last repeats for `max: -1`). */
  complete?: ArgKind[];
  /** Positional counts (checked before anything is sent). */
  min?: number;
  max?: number;
  /** Takes code words after the positionals: flags are options only before the code. */
  code?: boolean;
  /** The words a "subcommand" positional takes (`pyctl node forget`). */
  subcommands?: string[];
  /** Not listed in overviews (internal helpers such as __complete). */
  hidden?: boolean;
}

export interface RoleSpec {
  role: "pysh" | "pyctl" | "pythond";
  summary: string;
  commands: CmdSpec[];
  /** Extra lines for the overview (environment variables). */
  footer?: string;
}

export function synopsis(role: string, c: CmdSpec): string {
  const opts = Object.entries(c.options ?? {}).map(([k, o]) => `[--${k}${o.value ? ` ${o.value}` : ""}]`);
  return [role, c.name, c.args, ...opts, c.tail].filter(Boolean).join(" ");
}

export function usageError(role: string, c: CmdSpec, why?: string): PythondError {
  return new PythondError("usage", `usage: ${synopsis(role, c)}${why ? ` (${why})` : ""} -- see: ${role} ${c.name} --help`);
}

export function findCommand(spec: RoleSpec, name: string): CmdSpec | undefined {
  return spec.commands.find((c) => c.name === name);
}

/** The closest of `candidates` to `word` (edit distance <= 2), for "did you mean". */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = 3;
  for (const c of candidates) {
    const d = distance(word, c);
    if (d < bestD) [best, bestD] = [c, d];
  }
  return best;
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

export function unknownCommand(spec: RoleSpec, word: string): PythondError {
  const names = spec.commands.filter((c) => !c.hidden).map((c) => c.name);
  const near = closest(word, names);
  return new PythondError(
    "unknown_command",
    `unknown command ${word}${near ? ` (did you mean ${near}?)` : ""} -- commands: ${names.join(", ")}; see: ${spec.role} --help`,
  );
}

function unknownOption(role: string, c: CmdSpec, word: string): PythondError {
  const names = Object.keys(c.options ?? {}).map((k) => `--${k}`);
  const near = closest(word.split("=")[0]!, names);
  const valid = names.length ? `valid: ${[...names, "--help"].join(", ")}` : "it takes no options but --help";
  const code = c.code ? "; code that starts with -- goes after a --" : "";
  return new PythondError("usage", `unknown option ${word.split("=")[0]}${near ? ` (did you mean ${near}?)` : ""} for ${role} ${c.name}; ${valid}${code}`);
}

export interface Parsed {
  opts: Record<string, string | true>;
  /** Every value of a repeatable option, in order. */
  all: Record<string, string[]>;
  positional: string[];
  /** Code words joined (code commands), or null. */
  code: string | null;
  help: boolean;
}

/**
 * Parses argv after the command name against its spec. Options may come anywhere before `--`
 * (and, for code commands, before the code). Unknown options, missing values and wrong
 * positional counts are refused here, before anything is sent.
 */
export function parseArgs(role: string, c: CmdSpec, argv: readonly string[]): Parsed {
  const p: Parsed = { opts: {}, all: {}, positional: [], code: null, help: false };
  const opts = c.options ?? {};
  const max = c.max ?? (c.code ? 1 : 0);
  let i = 0;
  for (; i < argv.length; i++) {
    const w = argv[i]!;
    if (w === "--") {
      i++;
      break;
    }
    if (w === "--help" || w === "-h") {
      p.help = true;
      return p;
    }
    const codeStarts = c.code && p.positional.length >= max;
    const alias = /^-[a-zA-Z]$/.test(w) && !codeStarts ? Object.keys(opts).find((k) => opts[k]!.short === w[1]) : undefined;
    if (alias) {
      // a short alias of a valued option takes the next word (`pysh sh -l gpu=1 …`)
      const o = opts[alias]!;
      const v = o.value ? argv[++i] : true;
      if (v === undefined || v === "") throw new PythondError("usage", `-${w[1]} needs a value (${o.value}) -- see: ${role} ${c.name} --help`);
      p.opts[alias] = v;
      if (typeof v === "string") (p.all[alias] ??= []).push(v);
      continue;
    }
    if (w.startsWith("--") && w.length > 2 && (!codeStarts || /^--[a-z][a-z0-9-]*(=|$)/.test(w))) {
      const eq = w.indexOf("=");
      const key = eq < 0 ? w.slice(2) : w.slice(2, eq);
      const o = Object.hasOwn(opts, key) ? opts[key] : undefined;
      if (!o) throw unknownOption(role, c, w);
      let v: string | true = true;
      if (o.value) {
        const val = eq < 0 ? argv[++i] : w.slice(eq + 1);
        if (val === undefined || val === "") throw new PythondError("usage", `--${key} needs a value (${o.value}) -- see: ${role} ${c.name} --help`);
        v = val;
      } else if (eq >= 0) throw new PythondError("usage", `--${key} takes no value -- see: ${role} ${c.name} --help`);
      p.opts[key] = v;
      if (typeof v === "string") (p.all[key] ??= []).push(v);
      continue;
    }
    if (codeStarts) break;
    if (!c.code && w.length > 1 && w.startsWith("-") && !/^-\d/.test(w)) throw unknownOption(role, c, w);
    p.positional.push(w);
  }
  const rest = argv.slice(i);
  if (c.code) p.code = rest.length ? rest.join(" ") : null;
  else p.positional.push(...rest);
  const min = c.min ?? 0;
  if (p.positional.length < min) throw usageError(role, c, "missing arguments");
  if (max >= 0 && p.positional.length > max) throw usageError(role, c, `unexpected: ${p.positional.slice(max).join(" ")}`);
  return p;
}

/** `<role> <cmd> --help`: synopsis, what it does, options, examples. Plain text, no colour. */
export function commandHelp(role: string, c: CmdSpec): string {
  const out = [`usage: ${synopsis(role, c)}`, "", c.summary];
  const opts = Object.entries(c.options ?? {});
  out.push("", "options:");
  const rows = opts.map(([k, o]) => [`  ${o.short ? `-${o.short}, ` : ""}--${k}${o.value ? ` ${o.value}` : ""}`, o.help + (o.repeat ? " (repeatable)" : "")]);
  rows.push(["  -h, --help", "show this help"]);
  const w = Math.max(...rows.map((r) => r[0]!.length)) + 2;
  for (const [a, b] of rows) out.push(a!.padEnd(w) + b);
  out.push("", c.examples.length > 1 ? "examples:" : "example:", ...c.examples.map((e) => `  ${e}`));
  return out.join("\n");
}

/** `<role> --help`: one synopsis per command (the same as each command's --help). */
export function roleHelp(spec: RoleSpec, version: string): string {
  const cmds = spec.commands.filter((c) => !c.hidden);
  const syn = cmds.map((c) => synopsis(spec.role, c));
  const w = Math.max(...syn.map((s) => s.length).filter((n) => n <= 48), 20) + 2;
  const lines = cmds.map((c, i) => {
    const s = syn[i]!;
    return s.length + 2 > w ? `  ${s}\n  ${" ".repeat(w)}${c.summary}` : `  ${s.padEnd(w)}${c.summary}`;
  });
  const out = [`${spec.role} ${version} -- ${spec.summary}`, "", ...lines, "", `${spec.role} help <command> (or ${spec.role} <command> --help) shows options and an example.`];
  if (spec.footer) out.push("", spec.footer.trimEnd());
  return out.join("\n");
}
