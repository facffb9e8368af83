/**
 * `npm run release`: every target into dist/release/ (see README "Releases"):
 *   pythond-<ver>-<target>[.exe]   the binary (targets: scripts/compile.ts TARGETS)
 *   pythond-<ver>-<target>.tar.gz  POSIX targets: pythond-<ver>-<target>/{pythond, pysh, pyctl, README.md, LICENSE}
 *   pythond-<ver>-py3-none-<platform>.whl  POSIX targets: `pip install` puts pythond, pysh, pyctl on PATH
 *   install.sh                     scripts/install.sh
 *   SHA256SUMS                     `sha256sum -c` format, every file above
 * Cross-target runtimes come from the npm registry on first use and stay in Bun's install cache
 * (~/.bun/install/cache, or BUN_INSTALL_CACHE_DIR). Each binary is checked against its target
 * (format and CPU, formats.ts) before anything is written.
 *
 *   bun scripts/release.ts [--targets linux-x64,darwin-arm64] [--out DIR] [--commit C]
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { buildCommit, compile, ROOT, sourceDateEpoch, TARGETS } from "./compile.ts";
import { deflatePiece, tarGz, type Deflated } from "./release/archive.ts";
import { inspectBinary, wheelPlatform } from "./release/formats.ts";
import { inputsDigest } from "./release/inputs.ts";
import { buildWheel } from "./release/wheel.ts";

const { values } = parseArgs({
  options: { targets: { type: "string" }, out: { type: "string" }, commit: { type: "string" } },
});
const targets = values.targets ? values.targets.split(",") : [...TARGETS];
for (const t of targets) {
  if (!(TARGETS as readonly string[]).includes(t)) {
    console.error(`release: unknown target ${t} (known: ${TARGETS.join(", ")})`);
    process.exit(2);
  }
}
const out = values.out ?? join(ROOT, "dist", "release");
const version = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;
const commit = values.commit ?? buildCommit();
const mtime = sourceDateEpoch();
const digest = inputsDigest(ROOT, commit);
const readme = readFileSync(join(ROOT, "README.md"));
const license = readFileSync(join(ROOT, "LICENSE"));
const started = performance.now();
const secs = (t: number) => ((performance.now() - t) / 1000).toFixed(1);

const expected = (t: string) => ({
  format: t.startsWith("linux") ? "elf" : t.startsWith("darwin") ? "macho" : "pe",
  arch: t.includes("arm64") ? "arm64" : "x64",
  musl: t.endsWith("-musl"),
});

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const work = mkdtempSync(join(tmpdir(), "pythond-release-"));
const files: Array<{ name: string; bytes: Uint8Array }> = [];
const posix: Array<{ target: string; bin: Uint8Array; platform: string }> = [];
try {
  for (const t of targets) {
    const t0 = performance.now();
    const exe = t.startsWith("windows") ? ".exe" : "";
    // same output name for every build: it is embedded in the binary (compile.ts)
    const outfile = join(work, t, `pythond${exe}`);
    mkdirSync(join(work, t));
    compile({ outfile, target: t, commit, quiet: true });
    const bin = readFileSync(outfile);
    const info = inspectBinary(bin);
    const want = expected(t);
    if (info.format !== want.format || info.arch !== want.arch || (info.format === "elf" && !!info.interpreter?.includes("musl") !== want.musl)) {
      throw new Error(`${t}: built a ${JSON.stringify(info)}, expected ${JSON.stringify(want)}`);
    }
    files.push({ name: `pythond-${version}-${t}${exe}`, bytes: bin });
    if (!exe) posix.push({ target: t, bin, platform: wheelPlatform(info) });
    console.log(`compiled ${t} (${(bin.length / 1e6).toFixed(1)} MB) in ${secs(t0)} s`);
  }
  // The two cores compress two binaries at a time (zlib runs off the main thread).
  const t1 = performance.now();
  const deflated = new Map<string, Deflated>();
  for (let i = 0; i < posix.length; i += 2) {
    await Promise.all(posix.slice(i, i + 2).map(async (p) => deflated.set(p.target, await deflatePiece(p.bin))));
  }
  console.log(`compressed ${posix.length} binaries in ${secs(t1)} s`);
  for (const p of posix) {
    const dir = `pythond-${version}-${p.target}`;
    const data = deflated.get(p.target)!;
    const tgz = await tarGz(
      [
        { name: `${dir}/`, mode: 0o755, dir: true },
        { name: `${dir}/pythond`, mode: 0o755, data },
        { name: `${dir}/pysh`, mode: 0o777, symlink: "pythond" },
        { name: `${dir}/pyctl`, mode: 0o777, symlink: "pythond" },
        { name: `${dir}/README.md`, mode: 0o644, data: readme },
        { name: `${dir}/LICENSE`, mode: 0o644, data: license },
      ],
      mtime,
    );
    files.push({ name: `${dir}.tar.gz`, bytes: tgz });
    const whl = await buildWheel({ root: ROOT, version, platform: p.platform, binary: data, readme: readme.toString(), license: license.toString(), mtime });
    files.push({ name: whl.name, bytes: whl.bytes });
    if (p === posix[0]) console.log(whl.withClient ? "wheels include the Python client (clients/python/src/pythond)" : "wheels carry the binary only (no clients/python/src/pythond in this tree)");
  }
  // the installer travels with the release: a copied directory installs with `sh install.sh --from .`
  files.push({ name: "install.sh", bytes: readFileSync(join(ROOT, "scripts", "install.sh")) });
  files.sort((a, b) => (a.name < b.name ? -1 : 1));
  let sums = "";
  for (const f of files) {
    writeFileSync(join(out, f.name), f.bytes, { mode: /\.(tar\.gz|whl)$/.test(f.name) ? 0o644 : 0o755 });
    sums += `${new Bun.CryptoHasher("sha256").update(f.bytes).digest("hex")}  ${f.name}\n`;
  }
  writeFileSync(join(out, "SHA256SUMS"), sums);
  writeFileSync(join(out, ".inputs"), `${digest}\n`);
  console.log(sums.trimEnd());
  console.log(`release ${version} (commit ${commit}) in ${out}: ${files.length} files in ${secs(started)} s`);
} catch (e) {
  console.error(`release: ${(e as Error).message}`);
  process.exitCode = 1;
} finally {
  rmSync(work, { recursive: true, force: true });
}
