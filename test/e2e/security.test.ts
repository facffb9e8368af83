/**
 * Another local user must never get their code run as us, nor read what we send: the runtime
 * directory, the bootstrap files, the client's socket, files opened through links, secrets on the
 * command line (issue 15). The other-user cases really run as other uids (the suite runs as root):
 * `setpriv` to nobody (65534, the attacker) and 1500 (the victim), under a private TMPDIR made for
 * the test (root-owned, sticky and world-writable, like /tmp).
 */
import { describe, expect, test } from "bun:test";
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bundleHash } from "../../src/worker/bundle.ts";
import bootstrapSource from "../../src/worker/py/bootstrap.py" with { type: "text" };
import { BIN, LineWatcher, makeEnv, PYCTL, PYSH, startDaemon } from "./harness.ts";

const NOBODY = 65534;
const VICTIM = 1500;
const FAKE = join(import.meta.dir, "..", "fixtures", "fake_daemon.py");
const PY = "/usr/bin/python3"; // reachable by other users (a pyenv under /root is not)

const as = (uid: number, cmd: string[]) => ["setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", ...cmd];

/**
 * Other uids need root (setpriv, chown), a python3 and a checkout they can reach: so it is here
 * (the suite runs as root). Elsewhere (a non-root run, a checkout under a private /root) these
 * tests are skipped rather than failing for want of privileges.
 */
const asRoot =
  process.getuid?.() === 0 &&
  Bun.which("setpriv") !== null &&
  existsSync(PY) &&
  Bun.spawnSync(as(NOBODY, [PYSH, "--version"]), { stdout: "ignore", stderr: "ignore" }).exitCode === 0;
const rootTest = test.skipIf(!asRoot);

/** A scratch tree other users can reach: root/ 0755, root/tmp 1777 (their TMPDIR). */
function shared() {
  const root = mkdtempSync(join(tmpdir(), "pyd-sec-"));
  chmodSync(root, 0o755);
  const tmp = join(root, "tmp");
  mkdirSync(tmp);
  chmodSync(tmp, 0o1777);
  return { root, tmp, [Symbol.dispose]: () => rmSync(root, { recursive: true, force: true }) };
}

/** An environment with no PYTHOND_SOCK / XDG_RUNTIME_DIR: the socket goes to $TMPDIR/pythond-$UID. */
const envFor = (tmp: string, home: string, extra: Record<string, string> = {}) => ({
  PATH: "/usr/bin:/bin",
  TMPDIR: tmp,
  HOME: home,
  NO_COLOR: "1",
  PYTHOND_PYTHON: PY,
  ...extra,
});

async function run(cmd: string[], env: Record<string, string>, stdin?: string) {
  const p = Bun.spawn(cmd, { env, stdin: stdin === undefined ? "ignore" : new Blob([stdin]), stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, stdout, stderr };
}

/** The fake daemon (test/fixtures/fake_daemon.py) as nobody on `sock`, logging what it hears. */
async function fakeDaemon(sock: string, log: string) {
  const p = Bun.spawn(as(NOBODY, [PY, FAKE, sock, log]), { stdout: "pipe", stderr: "pipe" });
  await new LineWatcher(p.stdout as ReadableStream<Uint8Array>).waitFor(/ready/);
  return { [Symbol.asyncDispose]: async () => void (p.kill("SIGKILL"), await p.exited) };
}

describe("the fallback runtime directory of another user", () => {
  rootTest("a root daemon refuses $TMPDIR/pythond-0 made by nobody, and runs none of the files planted there", async () => {
    using s = shared();
    const pwned = join(s.root, "pwned"); // nobody cannot write here; code run as root can
    const planted = join(s.tmp, "pythond-0", "pythond", `py-${bundleHash()}`);
    const plant = [
      "import os",
      `p = ${JSON.stringify(planted)}`,
      "os.makedirs(p + '/_pythond')",
      "for d in (p + '/../..', p + '/..', p, p + '/_pythond'): os.chmod(d, 0o777)",
      `open(p + '/bootstrap.py', 'w').write(${JSON.stringify(`open(${JSON.stringify(pwned)}, 'w').write('ran')\n`)})`,
    ].join("\n");
    expect((await run(as(NOBODY, [PY, "-c", plant]), envFor(s.tmp, s.root))).code).toBe(0);
    const home = join(s.root, "root-home");
    mkdirSync(home, { mode: 0o700 });
    const env = envFor(s.tmp, home);
    const d = Bun.spawn([BIN, "daemon"], { env, stdout: "ignore", stderr: "pipe" });
    const log = new LineWatcher(d.stderr as ReadableStream<Uint8Array>);
    const outcome = await Promise.race([d.exited.then(() => "exited"), log.waitFor(/listening on/).then(() => "listening", () => "exited")]);
    if (outcome === "listening") {
      await run([PYSH, "new", "x"], env); // what the attacker waits for: the planted file runs as root
      d.kill("SIGKILL");
    }
    expect(outcome).toBe("exited");
    expect(await d.exited).toBe(1);
    expect(log.text).toContain(`refusing ${join(s.tmp, "pythond-0")}: it belongs to another user (owner uid ${NOBODY}, mode 0777)`);
    expect(existsSync(pwned)).toBe(false);
    expect(statSync(join(s.tmp, "pythond-0")).mode & 0o7777).toBe(0o777); // refused, never chmod'ed into shape
  });

  test("the worker's files found in our runtime directory are checked byte for byte, and rewritten", async () => {
    const e = makeEnv();
    const pwned = join(e.dir, "pwned");
    const dir = join(e.dir, "run", "pythond", `py-${bundleHash()}`);
    {
      await using d = await startDaemon([], e);
      expect((await d.pysh(["new", "a"])).code).toBe(0);
      expect((await d.pyctl(["stop"])).code).toBe(0);
      await d.proc.exited;
      writeFileSync(join(dir, "bootstrap.py"), `open(${JSON.stringify(pwned)}, 'w').write('ran')\n`);
      writeFileSync(join(dir, "socket.py"), `open(${JSON.stringify(pwned)}, 'w').write('ran')\n`);
      await using d2 = await startDaemon([], e);
      expect((await d2.pysh(["new", "b"])).code).toBe(0);
      expect((await d2.pysh(["run", "b", "6 * 7"])).stdout).toBe("42\n");
      expect(existsSync(pwned)).toBe(false);
      expect(readFileSync(join(dir, "bootstrap.py"), "utf8")).toBe(bootstrapSource);
      expect(existsSync(join(dir, "socket.py"))).toBe(false);
      await d2.pyctl(["stop"]);
    }
  });

  rootTest("a client refuses $TMPDIR/pythond-1500 made by nobody: nothing reaches the fake daemon there", async () => {
    using s = shared();
    const dir = join(s.tmp, `pythond-${VICTIM}`);
    const log = join(s.tmp, "fake.log");
    expect((await run(as(NOBODY, [PY, "-c", `import os; os.mkdir(${JSON.stringify(dir)}); os.chmod(${JSON.stringify(dir)}, 0o777)`]), {})).code).toBe(0);
    await using _fake = await fakeDaemon(join(dir, "pythond.sock"), log);
    const r = await run(as(VICTIM, [PYSH, "run", "work", "password = 'hunter2'"]), envFor(s.tmp, join(s.root, "nohome")));
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain(`refusing ${dir}: it belongs to another user (owner uid ${NOBODY}, mode 0777)`);
    expect(existsSync(log)).toBe(false); // the fake never heard from us
  });

  rootTest("a socket named with PYTHOND_SOCK in a shared sticky directory must be ours (or root's)", async () => {
    using s = shared();
    const sock = join(s.tmp, "shared.sock");
    const log = join(s.tmp, "fake.log");
    await using _fake = await fakeDaemon(sock, log);
    const r = await run(as(VICTIM, [PYSH, "run", "work", "password = 'hunter2'"]), envFor(s.tmp, join(s.root, "nohome"), { PYTHOND_SOCK: sock }));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`refusing ${sock}: it is a socket of uid ${NOBODY}, not a daemon of yours (uid ${VICTIM}); nothing was sent`);
    expect(existsSync(log)).toBe(false);
  });

  rootTest("the user's own daemon in the fallback directory works as before (0700, made by them)", async () => {
    using s = shared();
    const home = join(s.root, "victim-home");
    mkdirSync(home);
    chownSync(home, VICTIM, VICTIM);
    const env = envFor(s.tmp, home);
    const d = Bun.spawn(as(VICTIM, [BIN, "daemon"]), { env, stdout: "ignore", stderr: "pipe" });
    try {
      await new LineWatcher(d.stderr as ReadableStream<Uint8Array>).waitFor(/listening on/);
      const dir = join(s.tmp, `pythond-${VICTIM}`);
      expect(statSync(dir).uid).toBe(VICTIM);
      expect(statSync(dir).mode & 0o777).toBe(0o700);
      expect((await run(as(VICTIM, [PYSH, "new", "w"]), env)).code).toBe(0);
      expect((await run(as(VICTIM, [PYSH, "run", "w", "import os; os.getuid()"]), env)).stdout).toBe(`${VICTIM}\n`);
      expect((await run(as(VICTIM, [PYCTL, "stop"]), env)).code).toBe(0);
      expect(await d.exited).toBe(0);
    } finally {
      d.kill("SIGKILL");
    }
  });
});

describe("history the user cannot write", () => {
  rootTest("a read-only home, or a session directory without write permission: said once in the log and in status", async () => {
    using s = shared();
    const home = join(s.root, "ro-home");
    mkdirSync(home);
    chownSync(home, VICTIM, VICTIM);
    chmodSync(home, 0o555); // ~/.pythond cannot be created
    const env = envFor(s.tmp, home);
    const d = Bun.spawn(as(VICTIM, [BIN, "daemon"]), { env, stdout: "ignore", stderr: "pipe" });
    try {
      const log = new LineWatcher(d.stderr as ReadableStream<Uint8Array>);
      await log.waitFor(/listening on/);
      await log.waitFor(new RegExp(`history disabled for every session: cannot create ${join(home, ".pythond")}`));
      expect((await run(as(VICTIM, [PYSH, "new", "w"]), env)).code).toBe(0);
      expect((await run(as(VICTIM, [PYSH, "run", "w", "1 + 1"]), env)).stdout).toBe("2\n");
      const st = JSON.parse((await run(as(VICTIM, [PYSH, "status", "w"]), env)).stdout);
      expect(st.history).toBe(`history disabled: ${join(home, ".pythond")}: Permission denied`);
      await log.waitFor(/session w: history disabled: .*Permission denied/);
      // writable home, but the session's directory is not writable
      chmodSync(home, 0o755);
      mkdirSync(join(home, ".pythond", "sessions", "r"), { recursive: true, mode: 0o700 });
      for (const p of [".pythond", ".pythond/sessions", ".pythond/sessions/r"]) chownSync(join(home, p), VICTIM, VICTIM);
      chmodSync(join(home, ".pythond", "sessions", "r"), 0o500);
      expect((await run(as(VICTIM, [PYSH, "new", "r"]), env)).code).toBe(0);
      const r = JSON.parse((await run(as(VICTIM, [PYSH, "status", "r"]), env)).stdout);
      expect(r.history).toBe(`history disabled: ${join(home, ".pythond", "sessions", "r", "history.py")}: Permission denied`);
      await log.waitFor(/session r: history disabled: .*history\.py: Permission denied/);
      expect((await run(as(VICTIM, [PYCTL, "stop"]), env)).code).toBe(0);
      expect(await d.exited).toBe(0);
    } finally {
      d.kill("SIGKILL");
    }
  });
});

describe("files opened through links", () => {
  test("a link planted at a record's temporary file is removed, not written through", async () => {
    await using d = await startDaemon();
    const target = join(d.e.dir, "precious");
    writeFileSync(target, "precious\n");
    chmodSync(target, 0o644);
    symlinkSync(target, join(d.e.dir, "run", "pythond", "sessions", "n.json.tmp"));
    expect((await d.pysh(["new", "n"])).code).toBe(0);
    expect((await d.pysh(["run", "n", "1 + 1"])).stdout).toBe("2\n");
    expect(readFileSync(target, "utf8")).toBe("precious\n");
    expect(statSync(target).mode & 0o777).toBe(0o644);
  });

  test("history files and a session directory that are links are not followed; status and the log say so", async () => {
    await using d = await startDaemon();
    const sessions = join(d.e.home, ".pythond", "sessions");
    mkdirSync(join(sessions, "h"), { recursive: true, mode: 0o700 });
    const target = join(d.e.dir, "hist-target");
    writeFileSync(target, "keep\n");
    chmodSync(target, 0o644);
    symlinkSync(target, join(sessions, "h", "history.py"));
    const elsewhere = join(d.e.dir, "elsewhere");
    mkdirSync(elsewhere);
    chmodSync(elsewhere, 0o755);
    symlinkSync(elsewhere, join(sessions, "l"));
    for (const n of ["h", "l"]) {
      expect((await d.pysh(["new", n])).code).toBe(0);
      expect((await d.pysh(["run", n, "secret = 'typed-in-a-cell'"])).code).toBe(0);
    }
    expect(readFileSync(target, "utf8")).toBe("keep\n");
    expect(statSync(target).mode & 0o777).toBe(0o644);
    expect(statSync(elsewhere).mode & 0o777).toBe(0o755);
    expect(readdirSync(elsewhere)).toEqual([]);
    const h = JSON.parse((await d.pysh(["status", "h"])).stdout);
    expect(h.history).toBe(`history disabled: ${join(sessions, "h", "history.py")}: is a symbolic link`);
    const l = JSON.parse((await d.pysh(["status", "l"])).stdout);
    expect(l.history).toStartWith(`history disabled: ${join(sessions, "l")}: is a symbolic link`);
    await d.log.waitFor(/session h: history disabled: .*history\.py: is a symbolic link/);
    await d.log.waitFor(/session l: history disabled/);
  });

  rootTest("a session directory of another user: history off, said once in the log and in status; the session works", async () => {
    await using d = await startDaemon();
    const dir = join(d.e.home, ".pythond", "sessions", "o");
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chownSync(dir, NOBODY, NOBODY);
    expect((await d.pysh(["new", "o"])).code).toBe(0);
    expect((await d.pysh(["run", "o", "1 + 1"])).stdout).toBe("2\n");
    const st = JSON.parse((await d.pysh(["status", "o"])).stdout);
    expect(st.history).toBe(`history disabled: ${dir}: belongs to another user (owner uid ${NOBODY}, mode 0700)`);
    await d.log.waitFor(/session o: history disabled: .* belongs to another user/);
    expect(readdirSync(dir)).toEqual([]);
    const ok = await d.pysh(["run", "o", "6 * 7"]);
    expect(ok.stdout.trim()).toBe("42");
  });

  test("~/.pythond and ~/.pythond/sessions are 0700 (an older 0755 one is tightened)", async () => {
    const e = makeEnv();
    mkdirSync(join(e.home, ".pythond"), { mode: 0o755 });
    chmodSync(join(e.home, ".pythond"), 0o755);
    await using d = await startDaemon([], e);
    expect((await d.pysh(["new", "a"])).code).toBe(0);
    for (const p of [".pythond", ".pythond/sessions", ".pythond/sessions/a"]) expect(statSync(join(e.home, p)).mode & 0o777).toBe(0o700);
    expect(JSON.parse((await d.pysh(["status", "a"])).stdout).history).toBe("ok");
  });
});

describe("secrets on the command line", () => {
  test("pyctl connect: a token given as an argument is wiped from argv at once, with a warning", async () => {
    await using d = await startDaemon();
    let probed!: () => void;
    const seen = new Promise<void>((resolve) => (probed = resolve));
    // A remote that accepts and never answers: the probe waits, and pyctl with it.
    const silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { open: () => probed(), data() {} } });
    const token = `tok${crypto.randomUUID().replaceAll("-", "")}`;
    const p = Bun.spawn([PYCTL, "connect", "srv", `127.0.0.1:${silent.port}`, token], {
      env: { ...d.e.env, PYTHOND_CONNECT_TIMEOUT: "60" },
      stdout: "pipe",
      stderr: "pipe",
    });
    try {
      await seen; // the daemon is probing: pyctl has sent its frame and waits for the reply
      const cmdline = readFileSync(`/proc/${p.pid}/cmdline`, "utf8");
      expect(cmdline).toContain("connect\0srv\0");
      expect(cmdline).not.toContain(token);
    } finally {
      p.kill("SIGKILL");
      silent.stop(true);
    }
    expect(await new Response(p.stderr).text()).toContain("warning: a token on the command line is visible to other local users");
  });

  test("pyctl connect without a token says where one may come from", async () => {
    await using d = await startDaemon();
    const r = await d.pyctl(["connect", "srv", "127.0.0.1:9"]);
    expect(r).toMatchObject({ code: 1, stderr: "ERR connect needs the remote's token: - (stdin), --token-file FILE or PYTHOND_TOKEN\n" });
  });
});
