/**
 * What this binary was built from, baked in by scripts/build.ts with `bun build --define` (the
 * identifiers below are replaced by string literals at build time). Run from source
 * (`bun src/main.ts`) nothing is defined and the fallbacks say so.
 */
import { VERSION } from "./protocol/version.ts";

declare const PYTHOND_BUILD_COMMIT: string | undefined;
declare const PYTHOND_BUILD_TARGET: string | undefined;

/** Git commit (12 hex digits, `-dirty` when the tree had uncommitted changes), or "unknown". */
export const BUILD_COMMIT: string = typeof PYTHOND_BUILD_COMMIT === "string" ? PYTHOND_BUILD_COMMIT : "source";
/** Release target name (linux-x64, darwin-arm64, ...). */
export const BUILD_TARGET: string =
  typeof PYTHOND_BUILD_TARGET === "string" ? PYTHOND_BUILD_TARGET : `${process.platform}-${process.arch}`;

/** The `--version` line of every role: `pysh 0.5.0 (commit 1a2b3c4d5e6f, linux-x64)`. */
export function versionLine(tool: string): string {
  return `${tool} ${VERSION} (commit ${BUILD_COMMIT}, ${BUILD_TARGET})`;
}
