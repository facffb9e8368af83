/**
 * A digest of everything a release is made from (sources, scripts, lockfile, README, licence, the commit,
 * the Python client library when present, bun's version). The release writes it to
 * dist/release/.inputs; tests rebuild the release only when it differs, so a targeted test run
 * after a code change never checks a stale release, and an unchanged tree is not rebuilt.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";

const PARTS = ["src", "scripts", "clients/python", "package.json", "package-lock.json", "README.md", "LICENSE"];

function walk(root: string, p: string, h: Bun.CryptoHasher): void {
  if (!existsSync(p)) return;
  if (statSync(p).isDirectory()) {
    for (const name of readdirSync(p).sort()) {
      if (name === "__pycache__" || name === "node_modules") continue;
      walk(root, join(p, name), h);
    }
    return;
  }
  h.update(relative(root, p) + "\0");
  h.update(readFileSync(p));
  h.update("\0");
}

/** `commit` too: it is baked into the binaries (a new commit with the same files is a new release). */
export function inputsDigest(root: string, commit: string): string {
  const h = new Bun.CryptoHasher("sha256");
  h.update(`bun ${Bun.version}\0commit ${commit}\0`);
  for (const part of PARTS) walk(root, join(root, part), h);
  return h.digest("hex");
}
