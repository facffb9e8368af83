/**
 * One `bun build --compile`, shared by scripts/build.ts (the host binary) and scripts/release.ts
 * (every target). The commit and target are baked in with --define (src/build-info.ts).
 *
 * Reproducible: with the same source, bun, flags and OUTPUT FILE NAME the bytes are the same (the
 * output name is embedded: `/$bunfs/root/<name>`), so every target is compiled as `.../pythond`
 * (`pythond.exe`) in a directory of its own and renamed afterwards.
 */
import { execFileSync } from "node:child_process";
import { join } from "node:path";

export const ROOT = join(import.meta.dir, "..");

/** Release target names, as in the file names; Bun's own is `bun-<name>`. */
export const TARGETS = ["linux-x64", "linux-arm64", "linux-x64-musl", "darwin-x64", "darwin-arm64", "windows-x64"] as const;
export type Target = (typeof TARGETS)[number];

export function hostTarget(): string {
  const os = process.platform === "win32" ? "windows" : process.platform;
  return `${os}-${process.arch}`;
}

function git(args: string[]): string | null {
  try {
    return execFileSync("git", args, { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return null;
  }
}

/** 12 hex digits of HEAD, `-dirty` if tracked files differ from it; PYTHOND_BUILD_COMMIT overrides. */
export function buildCommit(): string {
  if (process.env.PYTHOND_BUILD_COMMIT) return process.env.PYTHOND_BUILD_COMMIT;
  const head = git(["rev-parse", "--short=12", "HEAD"]);
  if (!head) return "unknown";
  const dirty = git(["status", "--porcelain", "--untracked-files=no"]);
  return dirty ? `${head}-dirty` : head;
}

/** Seconds since the epoch of HEAD's commit (SOURCE_DATE_EPOCH wins): the mtime inside archives. */
export function sourceDateEpoch(): number {
  const env = Number(process.env.SOURCE_DATE_EPOCH);
  if (Number.isInteger(env) && env > 0) return env;
  return Number(git(["log", "-1", "--format=%ct"]) ?? 0) || 0;
}

export interface CompileOptions {
  outfile: string;
  /** release target name; undefined = the host */
  target?: string;
  commit?: string;
  /** Bun's install cache (where cross-target runtimes are kept); default: Bun's own */
  cacheDir?: string;
  quiet?: boolean;
}

export function compile(o: CompileOptions): void {
  const target = o.target ?? hostTarget();
  const commit = o.commit ?? buildCommit();
  const args = [
    // --splitting: the lazily imported roles become separate chunks inside the binary; without it
    // every start loads the bytecode of all of them (daemon, TLS, pkijs...): pysh run ~6 ms slower.
    "build", "--compile", "--bytecode", "--format=esm", "--minify-syntax", "--splitting",
    "--no-compile-autoload-dotenv", "--no-compile-autoload-bunfig",
    "--define", `PYTHOND_BUILD_COMMIT=${JSON.stringify(commit)}`,
    "--define", `PYTHOND_BUILD_TARGET=${JSON.stringify(target)}`,
    ...(o.target ? [`--target=bun-${o.target}`] : []),
    join(ROOT, "src/main.ts"), "--outfile", o.outfile,
  ];
  const env = { ...process.env, ...(o.cacheDir ? { BUN_INSTALL_CACHE_DIR: o.cacheDir } : {}) };
  const proc = Bun.spawnSync([process.execPath, ...args], {
    stdio: ["ignore", o.quiet ? "pipe" : "inherit", "inherit"],
    cwd: ROOT,
    env,
  });
  if (proc.exitCode !== 0) throw new Error(`bun build --compile for ${target} failed (exit ${proc.exitCode})`);
}
