/**
 * `npm run release` for real: all six targets are built (bun --target, runtimes from the npm
 * registry, cached), each checked from its own headers (scripts/release/formats.ts) and, as a
 * second opinion, by file(1); the linux-x64 one runs here; archives and sums are checked with
 * the system's tar, gzip and sha256sum; a second build of the same commit gives the same bytes.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, readlinkSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspectBinary } from "../../scripts/release/formats.ts";
import { exec, makeEnv, ROOT } from "./harness.ts";
import { ensureRelease, RELEASE, releaseSums, sha256File, VERSION } from "./release-harness.ts";

const TARGETS: Record<string, { format: string; arch: string; file: RegExp }> = {
  "linux-x64": { format: "elf", arch: "x64", file: /ELF 64-bit LSB .*x86-64.*interpreter \/lib64\/ld-linux-x86-64\.so\.2/ },
  "linux-arm64": { format: "elf", arch: "arm64", file: /ELF 64-bit LSB .*ARM aarch64.*interpreter \/lib\/ld-linux-aarch64\.so\.1/ },
  "linux-x64-musl": { format: "elf", arch: "x64", file: /ELF 64-bit LSB .*x86-64.*interpreter \/lib\/ld-musl-x86_64\.so\.1/ },
  "darwin-x64": { format: "macho", arch: "x64", file: /Mach-O 64-bit x86_64 executable/ },
  "darwin-arm64": { format: "macho", arch: "arm64", file: /Mach-O 64-bit arm64 executable/ },
  "windows-x64": { format: "pe", arch: "x64", file: /PE32\+ executable \(console\) x86-64, for MS Windows/ },
};
const exe = (t: string) => (t.startsWith("windows") ? ".exe" : "");
const POSIX = Object.keys(TARGETS).filter((t) => !exe(t));
const WHEELS: Record<string, string> = {
  "linux-x64": "manylinux_2_17_x86_64",
  "linux-arm64": "manylinux_2_17_aarch64",
  "linux-x64-musl": "musllinux_1_2_x86_64",
  "darwin-x64": "macosx_13_0_x86_64",
  "darwin-arm64": "macosx_13_0_arm64",
};

beforeAll(ensureRelease, 300_000);

describe("release", () => {
  test("every file is named pythond-<version>-<target> and listed in SHA256SUMS with its real sum", async () => {
    const sums = releaseSums();
    const expected = [
      ...Object.keys(TARGETS).map((t) => `pythond-${VERSION}-${t}${exe(t)}`),
      ...POSIX.map((t) => `pythond-${VERSION}-${t}.tar.gz`),
      ...POSIX.map((t) => `pythond-${VERSION}-py3-none-${WHEELS[t]}.whl`),
      "install.sh",
    ].sort();
    expect(readFileSync(join(RELEASE, "install.sh"), "utf8")).toBe(readFileSync(join(ROOT, "scripts/install.sh"), "utf8"));
    expect([...sums.keys()].sort()).toEqual(expected);
    // every sum right, in the format sha256sum -c reads (one pass over the ~1.2 GB)
    const r = await exec(["sha256sum", "-c", "SHA256SUMS"], makeEnv(), { cwd: RELEASE });
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split("\n").sort()).toEqual(expected.map((n) => `${n}: OK`).sort());
  });

  for (const [t, want] of Object.entries(TARGETS)) {
    test(`${t}: header format and CPU (own parser and file(1))`, async () => {
      const path = join(RELEASE, `pythond-${VERSION}-${t}${exe(t)}`);
      const info = inspectBinary(readFileSync(path));
      expect(info.format).toBe(want.format as typeof info.format);
      expect(info.arch).toBe(want.arch as typeof info.arch);
      if (info.format === "elf") expect(info.interpreter!.includes("musl")).toBe(t.endsWith("musl"));
      if (info.format === "elf" && !t.endsWith("musl")) expect(info.glibc).toEqual([2, 17]);
      if (info.format === "macho") expect(info.codeSignature).toBe(true); // arm64 macOS runs only signed code
      if (info.format === "pe") expect(info.peSubsystem).toBe(3); // console
      const f = await exec(["file", "-b", path], makeEnv());
      expect(f.stdout).toMatch(want.file);
      expect(statSync(path).mode & 0o111).toBeTruthy();
    });
  }

  test("the linux-x64 release binary runs here and says what it was built from", async () => {
    const r = await exec([join(RELEASE, `pythond-${VERSION}-linux-x64`), "--version"], makeEnv());
    expect(r.stdout).toMatch(new RegExp(`^pythond ${VERSION.replace(/\./g, "\\.")} \\(commit [0-9a-f]{12}(-dirty)?, linux-x64\\)\\n$`));
  });

  for (const t of POSIX) {
    test(`${t}.tar.gz holds the binary, pysh/pyctl symlinks, README and licence`, async () => {
      const e = makeEnv();
      const dir = mkdtempSync(join(tmpdir(), "pyd-tgz-"));
      try {
        const tgz = join(RELEASE, `pythond-${VERSION}-${t}.tar.gz`);
        expect((await exec(["gzip", "-t", tgz], e)).code).toBe(0);
        const x = await exec(["tar", "-xzf", tgz, "-C", dir], e);
        expect(x.stderr).toBe("");
        const top = join(dir, `pythond-${VERSION}-${t}`);
        expect(sha256File(join(top, "pythond"))).toBe(releaseSums().get(`pythond-${VERSION}-${t}`)!);
        expect(readlinkSync(join(top, "pysh"))).toBe("pythond");
        expect(readlinkSync(join(top, "pyctl"))).toBe("pythond");
        expect(readFileSync(join(top, "README.md"), "utf8")).toBe(readFileSync(join(ROOT, "README.md"), "utf8"));
        expect(readFileSync(join(top, "LICENSE"), "utf8")).toMatch(/^MIT License/);
        if (t === "linux-x64") expect((await exec([join(top, "pysh"), "--version"], e)).stdout).toMatch(/^pysh .*linux-x64\)$/m);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  test("reproducible: building the same commit again gives the same SHA-256 (two targets)", async () => {
    const out = mkdtempSync(join(tmpdir(), "pyd-rel2-"));
    try {
      const p = Bun.spawn([process.execPath, join(ROOT, "scripts/release.ts"), "--targets", "linux-x64,darwin-arm64", "--out", out], {
        cwd: ROOT,
        stdout: "pipe",
        stderr: "pipe",
      });
      expect(await p.exited).toBe(0);
      const again = releaseSums(out);
      const first = releaseSums();
      expect(again.size).toBe(7); // 2 binaries, 2 tarballs, 2 wheels, install.sh
      for (const [name, hex] of again) expect({ name, hex }).toEqual({ name, hex: first.get(name)! });
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 120_000);

  test("an unknown target is refused before anything is built", async () => {
    const r = await exec([process.execPath, join(ROOT, "scripts/release.ts"), "--targets", "linux-mips", "--out", "/nonexistent/x"], makeEnv(), { cwd: ROOT });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unknown target linux-mips (known: linux-x64, linux-arm64");
  });
});
