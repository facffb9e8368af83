/**
 * Code arguments of pysh run/fire/fork: several words are joined with spaces (as the original
 * did); a single `@file` reads a file; a single `-`, or no code with stdin not a terminal, reads
 * stdin. Words that look like flags (`-1 + 2`) are code: only options named before the code
 * (`--timeout 5`, `--`) are taken as options. citty is not used here for that reason.
 */
import { readFileSync } from "node:fs";
import { PythondError } from "../protocol/errors.ts";

export interface CodeArgs {
  opts: Record<string, string | true>;
  positional: string[];
  code: string | null;
}

/**
 * Splits argv after the command: `positionals` leading names, then options from `valued` and
 * `switches`, then code (everything else, joined).
 */
export function parseCodeArgs(argv: string[], positionals: number, valued: string[] = [], switches: string[] = []): CodeArgs {
  const opts: Record<string, string | true> = {};
  const positional: string[] = [];
  let i = 0;
  for (; i < argv.length; i++) {
    const w = argv[i]!;
    if (w === "--") {
      i++;
      break;
    }
    if (w.startsWith("--") && w.length > 2) {
      const eq = w.indexOf("=");
      const key = eq < 0 ? w.slice(2) : w.slice(2, eq);
      if (switches.includes(key)) {
        opts[key] = true;
        continue;
      }
      if (valued.includes(key)) {
        const v = eq < 0 ? argv[++i] : w.slice(eq + 1);
        if (v === undefined) throw new PythondError("usage", `--${key} needs a value`);
        opts[key] = v;
        continue;
      }
    }
    if (positional.length < positionals) {
      positional.push(w);
      continue;
    }
    break;
  }
  const rest = argv.slice(i);
  return { opts, positional, code: rest.length ? rest.join(" ") : null };
}

/** Resolves `@file`, `-` and piped stdin into the code text. */
export async function resolveCode(code: string | null): Promise<string> {
  if (code === "-" || (code === null && !process.stdin.isTTY)) return await Bun.stdin.text();
  if (code === null) throw new PythondError("usage", "no code given (pass it as arguments, @file, or - for stdin)");
  if (code.startsWith("@") && !/\s/.test(code) && code.length > 1) {
    try {
      return readFileSync(code.slice(1), "utf8");
    } catch (e) {
      throw new PythondError("io", `cannot read ${code.slice(1)}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
  return code;
}
