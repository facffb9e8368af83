/**
 * Builds ONE executable, dist/pythond, and the dist/pysh and dist/pyctl symlinks to it.
 * `--bytecode` needs `--format=esm` (without it the binary builds but crashes at run time);
 * the binary must not pick up .env or bunfig.toml from whatever directory a user runs it in
 * (flags in scripts/compile.ts). PYTHOND_TARGET=linux-arm64 (etc.; `bun-` prefix optional)
 * cross-compiles; `npm run release` builds every target.
 */
import { mkdirSync, rmSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { compile, ROOT } from "./compile.ts";

const dist = join(ROOT, "dist");
mkdirSync(dist, { recursive: true });
const out = join(dist, "pythond");
try {
  compile({ outfile: out, target: process.env.PYTHOND_TARGET?.replace(/^bun-/, "") || undefined });
} catch (e) {
  console.error((e as Error).message);
  process.exit(1);
}
for (const link of ["pysh", "pyctl"]) {
  rmSync(join(dist, link), { force: true });
  symlinkSync("pythond", join(dist, link));
}
console.log(`built ${out} (+ pysh, pyctl symlinks)`);
