/**
 * Code arguments of pysh run/fire/fork (split from the options by spec.ts parseArgs): several
 * words are joined with spaces (as the original did); a single `@file` reads a file; a single `-`,
 * or no code with stdin not a terminal, reads stdin.
 */
import { readFileSync } from "node:fs";
import { PythondError } from "../protocol/errors.ts";

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
