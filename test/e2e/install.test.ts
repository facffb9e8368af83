/**
 * scripts/install.sh end to end, from the real dist/release: into temporary prefixes with a
 * clean environment (env -i), under dash, busybox ash (with only busybox's tools on PATH) and
 * bash; run through the symlinks; upgrade in place under a running daemon, then `pyctl restart`
 * onto the new binary with the session intact; uninstall; tampered files and missing sums
 * refused with nothing installed; download from a loopback HTTP server (curl and busybox wget).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { alive, exec, killGroup, makeEnv, ROOT, until, type Env } from "./harness.ts";
import { BinDaemon, ensureRelease, RELEASE, releaseSums, VERSION } from "./release-harness.ts";

const SCRIPT = join(ROOT, "scripts", "install.sh");
const LINUX = `pythond-${VERSION}-linux-x64`;
const BUSYBOX = Bun.which("busybox") ?? "busybox"; // full path: the busybox-only PATH has no busybox itself

function need(tool: string) {
  if (!Bun.which(tool)) throw new Error(`${tool} is not installed: run \`sh scripts/setup-tools.sh\` as root (npm run setup does)`);
}

let tmp: string;
let busyboxBin: string;

beforeAll(async () => {
  for (const t of ["dash", "busybox", "shellcheck", "bash"]) need(t);
  tmp = mkdtempSync(join(tmpdir(), "pyd-inst-"));
  // An Alpine-like PATH: busybox's applets and nothing else.
  busyboxBin = join(tmp, "busybox-bin");
  mkdirSync(busyboxBin);
  const r = Bun.spawnSync(["busybox", "--install", "-s", busyboxBin]);
  if (r.exitCode !== 0) throw new Error(`busybox --install: ${r.stderr}`);
  await ensureRelease();
}, 300_000);

afterAll(() => rmSync(tmp, { recursive: true, force: true })); // a dozen ~110 MB copies

/** Runs install.sh with a clean environment: only HOME, PATH (and what a test adds). */
async function install(shell: string[], args: string[], opts: { path?: string; env?: Record<string, string>; home?: string } = {}) {
  const home = opts.home ?? join(tmp, "home");
  mkdirSync(home, { recursive: true });
  const env = { HOME: home, PATH: opts.path ?? "/usr/bin:/bin", ...opts.env };
  const p = Bun.spawn([...shell, SCRIPT, ...args], { env, cwd: tmp, stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, stdout, stderr };
}

function assertInstalled(prefix: string) {
  const bin = join(prefix, "bin");
  expect(lstatSync(join(bin, "pythond")).isFile()).toBe(true);
  expect(readlinkSync(join(bin, "pysh"))).toBe("pythond");
  expect(readlinkSync(join(bin, "pyctl"))).toBe("pythond");
  expect(readFileSync(join(prefix, "share/pythond/installed"), "utf8")).toBe("bin/pythond\nbin/pysh\nbin/pyctl\n");
}

/** A cell through the installed pysh, against a daemon started from the installed pythond. */
async function cellThrough(prefix: string): Promise<void> {
  const e = makeEnv();
  await using d = await new BinDaemon(e, join(prefix, "bin", "pythond")).start();
  const pysh = join(prefix, "bin", "pysh");
  expect((await exec([pysh, "new", "w"], e)).code).toBe(0);
  expect(await exec([pysh, "run", "w", "6 * 7"], e)).toEqual({ code: 0, stdout: "42\n", stderr: "" });
  expect((await exec([join(prefix, "bin", "pyctl"), "status"], e)).stdout).toContain(`pid: ${d.pid}`);
}

describe("install.sh", () => {
  test("is shellcheck clean as POSIX sh", async () => {
    const r = await exec(["shellcheck", "-s", "sh", SCRIPT], makeEnv());
    expect(r).toEqual({ code: 0, stdout: "", stderr: "" });
  });

  const shells: Array<[string, string[], () => string]> = [
    ["dash", ["dash"], () => "/usr/bin:/bin"],
    ["busybox ash with only busybox tools", [BUSYBOX, "sh"], () => busyboxBin],
    ["bash", ["bash"], () => "/usr/bin:/bin"],
  ];
  for (const [name, shell, path] of shells) {
    test(`${name}: installs from dist/release/ into a prefix; pysh and pyctl work through the symlinks; uninstall`, async () => {
      const prefix = join(tmp, `p-${shell[0]}`);
      const r = await install(shell, ["--from", `${RELEASE}/`, "--prefix", prefix], { path: path() });
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`installed pythond ${VERSION} (commit`);
      expect(r.stdout).toContain(`export PATH="${prefix}/bin:$PATH"`); // not on PATH: says what to add
      assertInstalled(prefix);
      expect(readFileSync(join(prefix, "bin/pythond"))).toEqual(readFileSync(join(RELEASE, LINUX)));
      await cellThrough(prefix);
      // something of the user's in the same bin/ is left alone by --uninstall
      writeFileSync(join(prefix, "bin", "mytool"), "#!/bin/sh\n");
      const u = await install(shell, ["--uninstall", "--prefix", prefix], { path: path() });
      expect(u.code).toBe(0);
      expect(u.stdout).toContain(`removed ${prefix}/bin/pythond`);
      for (const f of ["pythond", "pysh", "pyctl"]) expect(existsSync(join(prefix, "bin", f))).toBe(false);
      expect(existsSync(join(prefix, "share/pythond"))).toBe(false);
      expect(existsSync(join(prefix, "bin", "mytool"))).toBe(true);
    });
  }

  test("the release directory's own install.sh, run inside it: sh install.sh --from .", async () => {
    const prefix = join(tmp, "p-inside");
    const p = Bun.spawn(["sh", "install.sh", "--from", ".", "--prefix", prefix], {
      cwd: RELEASE,
      env: { HOME: join(tmp, "home"), PATH: "/usr/bin:/bin" },
      stdout: "pipe",
      stderr: "pipe",
    });
    const [out, err] = [await new Response(p.stdout).text(), await new Response(p.stderr).text()];
    expect({ code: await p.exited, err }).toEqual({ code: 0, err: "" });
    expect(out).toContain(`installed pythond ${VERSION}`);
    assertInstalled(prefix);
  });

  test("from one .tar.gz file, and into ~/.local/bin by default (not root) or /usr/local (root)", async () => {
    const home = join(tmp, "home-tgz");
    const r = await install(["sh"], ["--from", join(RELEASE, `${LINUX}.tar.gz`), ...(process.getuid?.() === 0 ? ["--prefix", join(home, ".local")] : [])], { home });
    expect(r.code).toBe(0);
    assertInstalled(join(home, ".local"));
    expect((await exec([join(home, ".local/bin/pyctl"), "--version"], makeEnv())).stdout).toMatch(/^pyctl .*linux-x64\)\n$/);
  });

  test("upgrade in place: the running daemon keeps running; pyctl restart starts the new binary with the session intact", async () => {
    const prefix = join(tmp, "p-upgrade");
    expect((await install(["dash"], ["--from", RELEASE, "--prefix", prefix])).code).toBe(0);
    // A second build of the same tree that differs (another baked-in commit): the "new version".
    const next = join(tmp, "next");
    const b = Bun.spawnSync([process.execPath, join(ROOT, "scripts/release.ts"), "--targets", "linux-x64", "--out", next, "--commit", "feedfacecafe"], { cwd: ROOT });
    expect(b.exitCode).toBe(0);
    const e: Env = makeEnv();
    const bin = join(prefix, "bin", "pythond");
    const d = await new BinDaemon(e, bin).start();
    let newPid = 0;
    try {
      const pysh = join(prefix, "bin", "pysh");
      expect((await exec([pysh, "new", "s"], e)).code).toBe(0);
      expect((await exec([pysh, "run", "s", "x = 41"], e)).code).toBe(0);
      const up = await install(["dash"], ["--from", next, "--prefix", prefix]);
      expect(up.code).toBe(0);
      expect(up.stdout).toContain(`-> pythond ${VERSION} (commit feedfacecafe, linux-x64)`);
      expect(up.stdout).toContain("pyctl restart");
      expect(alive(d.pid)).toBe(true); // still the old file, now unlinked
      expect(readlinkSync(`/proc/${d.pid}/exe`)).toBe(`${bin} (deleted)`);
      expect((await exec([join(prefix, "bin", "pyctl"), "restart"], e)).code).toBe(0);
      // Restart in place (execve): the same pid now runs the new file.
      await until(async () => {
        const st = await exec([join(prefix, "bin", "pyctl"), "status"], e);
        const m = /pid: (\d+)/.exec(st.stdout);
        newPid = m ? Number(m[1]) : 0;
        let exe = "";
        try {
          exe = readlinkSync(`/proc/${newPid}/exe`);
        } catch {}
        return newPid > 0 && exe === bin;
      }, "the restarted daemon");
      expect(newPid).toBe(d.pid); // in place
      expect(readlinkSync(`/proc/${newPid}/exe`)).toBe(bin); // the new file
      expect(await exec([pysh, "run", "s", "x + 1"], e)).toEqual({ code: 0, stdout: "42\n", stderr: "" });
      expect((await exec([pysh, "--version"], e)).stdout).toContain("commit feedfacecafe");
    } finally {
      if (newPid && newPid !== d.pid) killGroup(newPid);
      await d[Symbol.asyncDispose]();
    }
  });

  test("a tampered binary, a tampered tarball and a missing sum are refused, and nothing is installed", async () => {
    const bad = join(tmp, "tampered");
    mkdirSync(bad);
    copyFileSync(join(RELEASE, "SHA256SUMS"), join(bad, "SHA256SUMS"));
    for (const f of [LINUX, `${LINUX}.tar.gz`]) {
      const bytes = readFileSync(join(RELEASE, f));
      const mid = bytes.length >> 1;
      bytes[mid] = bytes[mid]! ^ 0x01; // one bit in the middle
      writeFileSync(join(bad, f), bytes);
    }
    const prefix = join(tmp, "p-bad");
    for (const from of [bad, join(bad, `${LINUX}.tar.gz`)]) {
      const r = await install(["dash"], ["--from", from, "--prefix", prefix]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^install\.sh: error: checksum mismatch for pythond-.* \(expected [0-9a-f]{64}, got [0-9a-f]{64}\): refusing to install it\n$/);
      expect(existsSync(prefix)).toBe(false);
    }
    // the right file, but its line removed from the sums
    copyFileSync(join(RELEASE, LINUX), join(bad, LINUX));
    writeFileSync(join(bad, "SHA256SUMS"), [...releaseSums()].filter(([n]) => n !== LINUX).map(([n, h]) => `${h}  ${n}\n`).join(""));
    const r = await install(["dash"], ["--from", join(bad, LINUX), "--prefix", prefix]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${LINUX} has no sum in ${bad}/SHA256SUMS: refusing to install it`);
    expect(existsSync(prefix)).toBe(false);
    const noSums = await install(["dash"], ["--from", join(tmp, "home"), "--prefix", prefix]);
    expect(noSums.stderr).toContain("no SHA256SUMS in");
  });

  test("a pysh that is not ours is not overwritten; bad options and uninstalling nothing are clear errors", async () => {
    const prefix = join(tmp, "p-foreign");
    mkdirSync(join(prefix, "bin"), { recursive: true });
    writeFileSync(join(prefix, "bin", "pysh"), "#!/bin/sh\necho mine\n");
    const r = await install(["dash"], ["--from", RELEASE, "--prefix", prefix]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${prefix}/bin/pysh exists and is not our link to pythond: move it away first (nothing was changed)`);
    expect(existsSync(join(prefix, "bin", "pythond"))).toBe(false);
    expect(readFileSync(join(prefix, "bin", "pysh"), "utf8")).toContain("mine");
    const u = await install(["dash"], ["--uninstall", "--prefix", prefix]);
    expect(u.code).toBe(1);
    expect(u.stderr).toContain(`nothing installed by this script under ${prefix}`);
    expect(readFileSync(join(prefix, "bin", "pysh"), "utf8")).toContain("mine");
    const o = await install(["dash"], ["--frm", RELEASE]);
    expect(o.code).toBe(1);
    expect(o.stderr).toContain("install.sh: error: unknown option: --frm");
    const t = await install(["dash"], ["--from", RELEASE, "--prefix", prefix], { env: { PYTHOND_TARGET: "linux-riscv64" } });
    expect(t.stderr).toContain("no pythond build for linux-riscv64 in");
  });

  test("downloads from PYTHOND_BASE_URL (loopback HTTP; curl, and busybox wget), verifying against the served sums", async () => {
    const server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch(req) {
        const name = decodeURIComponent(new URL(req.url).pathname.slice(1));
        if (name === "install.sh") return new Response(Bun.file(SCRIPT));
        if (name.includes("/") || !existsSync(join(RELEASE, name))) return new Response("not found", { status: 404 });
        return new Response(Bun.file(join(RELEASE, name)));
      },
    });
    try {
      const url = `http://127.0.0.1:${server.port}`;
      for (const [shell, path] of [[["dash"], "/usr/bin:/bin"], [[BUSYBOX, "sh"], busyboxBin]] as const) {
        const prefix = join(tmp, `p-url-${shell[0]}`);
        const r = await install([...shell], ["--prefix", prefix], { path, env: { PYTHOND_BASE_URL: url } });
        expect(r.stderr).toBe("");
        expect(r.stdout).toContain(`downloading ${url}/${LINUX}`);
        assertInstalled(prefix);
      }
      // the documented one-liner: curl ... | sh -s -- OPTIONS
      const prefix = join(tmp, "p-pipe");
      const pipe = Bun.spawn(["sh", "-c", `curl -fsSL ${url}/install.sh | sh -s -- --prefix '${prefix}'`], {
        env: { HOME: join(tmp, "home"), PATH: "/usr/bin:/bin", PYTHOND_BASE_URL: url },
        stdout: "pipe",
        stderr: "pipe",
      });
      const [out, err] = [await new Response(pipe.stdout).text(), await new Response(pipe.stderr).text()];
      expect({ code: await pipe.exited, err }).toEqual({ code: 0, err: "" });
      expect(out).toContain(`installed pythond ${VERSION}`);
      assertInstalled(prefix);
      // a URL that could be tampered with on the way is refused before anything is fetched
      const r = await install(["dash"], ["--prefix", join(tmp, "p-http")], { env: { PYTHOND_BASE_URL: "http://example.invalid/rel" } });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("refusing http://example.invalid/rel/SHA256SUMS: only https");
    } finally {
      server.stop(true);
    }
  });
});
