/**
 * pyctl install-service / uninstall-service from the built binary: the systemd unit checked by
 * `systemd-analyze verify` (system and user mode) and by content, written where systemd looks,
 * replaced only when it is ours, removed with its enablement link; the launchd plist parsed by
 * Python's plistlib; the unit's ExecStart run for real, stopped the way KillMode=process stops
 * it (the daemon only), started again: the session is still there.
 * There is no systemd manager in this container (PID 1 is not systemd): `systemctl restart`
 * itself is not run here.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BIN, exec, LineWatcher, makeEnv, PYCTL, PYSH, until, alive, killGroup, type Env } from "./harness.ts";

function need(tool: string) {
  if (!Bun.which(tool)) throw new Error(`${tool} is not installed: run \`sh scripts/setup-tools.sh\` as root (npm run setup does)`);
}

const pyctl = (e: Env, args: string[], env: Record<string, string> = {}) => exec([PYCTL, ...args], e, { env });

async function verify(e: Env, unit: string, user: boolean) {
  need("systemd-analyze");
  const xdg = join(e.dir, "xdg-run");
  mkdirSync(xdg, { recursive: true, mode: 0o700 });
  const r = await exec(["systemd-analyze", ...(user ? ["--user"] : []), "verify", unit], e, { env: { XDG_RUNTIME_DIR: xdg } });
  // systemd-analyze exits 0 even for unknown or unparsable settings: it only warns, on stderr.
  expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
}

/** ExecStart= split the way systemd does for our simple and double-quoted words. */
function execStart(unit: string): string[] {
  const line = /^ExecStart=(.*)$/m.exec(unit)![1]!;
  return [...line.matchAll(/"((?:[^"\\]|\\.)*)"|(\S+)/g)].map((m) => (m[1] !== undefined ? m[1].replace(/\\(.)/g, "$1") : m[2]!).replace(/%%/g, "%").replace(/\$\$/g, "$"));
}

describe("pyctl install-service (systemd)", () => {
  test("--print shows the user unit and writes nothing", async () => {
    const e = makeEnv();
    const r = await pyctl(e, ["install-service", "--print"]);
    expect(r.code).toBe(0);
    const u = r.stdout;
    expect(execStart(u)).toEqual([BIN, "daemon"]);
    for (const want of ["KillMode=process", "Restart=on-failure", "NoNewPrivileges=yes", "WantedBy=default.target", "[Install]"]) {
      expect(u.split("\n")).toContain(want);
    }
    // nothing that would break sessions
    for (const bad of ["PrivateTmp", "MemoryDenyWriteExecute", "ProtectHome", "User="]) expect(u).not.toMatch(new RegExp(`^${bad}`, "m"));
    expect(existsSync(join(e.home, ".config"))).toBe(false);
  });

  test("user unit: written under ~/.config/systemd/user, verified, replaced, removed with its enablement link", async () => {
    const e = makeEnv();
    const r = await pyctl(e, ["install-service", "--user", "--idle-timeout", "3600"]);
    expect(r.stderr).toBe("");
    const path = join(e.home, ".config/systemd/user/pythond.service");
    expect(r.stdout).toBe(
      `wrote ${path}\nto start it now and at every boot:\n  systemctl --user daemon-reload\n  systemctl --user enable --now pythond.service\n` +
        `  loginctl enable-linger ${r.stdout.match(/enable-linger (\S+)/)![1]}   # keep it running while you are logged out\n`,
    );
    const unit = readFileSync(path, "utf8");
    expect(execStart(unit)).toEqual([BIN, "daemon", "--idle-timeout", "3600"]);
    await verify(e, path, true);
    // again: replaces our own file
    expect((await pyctl(e, ["install-service"])).code).toBe(0);
    expect(execStart(readFileSync(path, "utf8"))).toEqual([BIN, "daemon"]);
    // what `systemctl --user enable` would have made
    const wants = join(e.home, ".config/systemd/user/default.target.wants");
    mkdirSync(wants);
    symlinkSync(path, join(wants, "pythond.service"));
    const u = await pyctl(e, ["uninstall-service"]);
    expect(u.stdout).toBe(
      `removed ${path}\nthen:\n  systemctl --user stop pythond.service   # the daemon only: sessions live on until pyctl stop\n  systemctl --user daemon-reload\n`,
    );
    expect(existsSync(path) || existsSync(join(wants, "pythond.service"))).toBe(false);
    const again = await pyctl(e, ["uninstall-service"]);
    expect(again).toEqual({ code: 1, stdout: "", stderr: `ERR no service installed at ${path}\n` });
  });

  test("a unit file we did not write is neither replaced nor removed", async () => {
    const e = makeEnv();
    const path = join(e.home, ".config/systemd/user/pythond.service");
    mkdirSync(join(e.home, ".config/systemd/user"), { recursive: true });
    writeFileSync(path, "[Service]\nExecStart=/bin/true\n");
    expect(await pyctl(e, ["install-service"])).toEqual({ code: 1, stdout: "", stderr: `ERR ${path} exists and was not written by pythond: not replacing it\n` });
    expect(await pyctl(e, ["uninstall-service"])).toEqual({ code: 1, stdout: "", stderr: `ERR ${path} was not written by pythond: not removing it\n` });
    expect(readFileSync(path, "utf8")).toBe("[Service]\nExecStart=/bin/true\n");
  });

  test("system unit with --listen: runs as the user, keeps its token, socket in /run; systemd-analyze verify is clean", async () => {
    const e = makeEnv();
    const dir = join(e.dir, "etc-systemd");
    const tokenFile = join(e.dir, "tok dir", "100% $HOME");
    const r = await pyctl(e, ["install-service", "--system", "--dir", dir, "--run-as", "root", "--listen", "0.0.0.0:7399", "--listen", "127.0.0.1:7400", "--token-file", tokenFile]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toContain("  systemctl enable --now pythond.service\n");
    expect(r.stdout).toContain("  export PYTHOND_SOCK=/run/pythond/pythond.sock   # in root's shell, for pysh and pyctl\n");
    const path = join(dir, "pythond.service");
    const unit = readFileSync(path, "utf8");
    expect(execStart(unit)).toEqual([BIN, "daemon", "--listen", "0.0.0.0:7399", "--listen", "127.0.0.1:7400", "--token-file", tokenFile]);
    for (const want of ["User=root", "RuntimeDirectory=pythond", "RuntimeDirectoryPreserve=yes", "Environment=PYTHOND_SOCK=/run/pythond/pythond.sock", "WantedBy=multi-user.target", "ProtectKernelTunables=yes"]) {
      expect(unit.split("\n")).toContain(want);
    }
    await verify(e, path, false);
    // without --token-file, a non-loopback listener gets a kept token (clients must know it)
    const d = await pyctl(e, ["install-service", "--system", "--print", "--run-as", "root", "--listen", "0.0.0.0:7399"]);
    expect(execStart(d.stdout).slice(-2)).toEqual(["--token-file", `${e.home}/.pythond/service.token`]);
  });

  test("bad combinations are refused with a clear error", async () => {
    const e = makeEnv();
    const cases: Array<[string[], string]> = [
      [["--user", "--system"], "--user and --system exclude each other"],
      [["--tls"], "--tls, --token-file and --san only apply with --listen HOST:PORT"],
      [["--run-as", "root"], "--run-as applies to --system services"],
      [["--format", "upstart"], "--format takes systemd or launchd"],
      [["--idle-timeout", "soon"], "--idle-timeout takes a number of seconds > 0"],
      [["--system", "--run-as", "no-such-user-here", "--listen", "0.0.0.0:1"], "no such user: no-such-user-here"],
    ];
    for (const [args, msg] of cases) {
      const r = await pyctl(e, ["install-service", "--print", ...args]);
      expect({ args, code: r.code, stderr: r.stderr }).toEqual({ args, code: 1, stderr: `ERR ${msg}\n` });
    }
  });

  test("the unit's ExecStart and Environment run the daemon; systemctl stop/restart (SIGTERM to it alone) and pyctl restart (exit 75) keep the session", async () => {
    const e = makeEnv();
    const unit = (await pyctl(e, ["install-service", "--print", "--idle-timeout", "600"])).stdout;
    const argv = execStart(unit);
    const unitEnv = Object.fromEntries([...unit.matchAll(/^Environment=(\w+)=(.*)$/gm)].map((m) => [m[1]!, m[2]!]));
    expect(unitEnv).toEqual({ PYTHOND_SUPERVISED: "1" });
    // what systemd does: start ExecStart with the unit's environment
    const start = async () => {
      const p = Bun.spawn(argv, { env: { ...e.env, ...unitEnv }, cwd: e.dir, stdout: "pipe", stderr: "pipe" });
      await new LineWatcher(p.stderr as ReadableStream<Uint8Array>).waitFor(/listening on/);
      return p;
    };
    let p = await start();
    let worker = 0;
    try {
      expect((await exec([PYSH, "new", "s"], e)).code).toBe(0);
      worker = Number((await exec([PYSH, "run", "s", "import os; x = 40; os.getpid()"], e)).stdout);
      p.kill("SIGTERM"); // systemctl stop/restart with KillMode=process: the main process only
      expect(await p.exited).toBe(0); // a clean exit: systemd does not count it as a failure
      expect(alive(worker)).toBe(true);
      p = await start();
      expect((await exec([PYSH, "run", "s", "x += 1"], e)).code).toBe(0);
      // pyctl restart under the service: the daemon leaves the successor to systemd
      // (RestartForceExitStatus=75) instead of starting one outside the unit
      expect((await exec([PYCTL, "restart"], e)).stdout).toContain("OK");
      expect(await p.exited).toBe(75);
      expect(unit.split("\n")).toContain("RestartForceExitStatus=75");
      expect(alive(worker)).toBe(true);
      p = await start();
      expect(await exec([PYSH, "run", "s", "x + 1"], e)).toEqual({ code: 0, stdout: "42\n", stderr: "" });
    } finally {
      p.kill("SIGKILL");
      if (worker) killGroup(worker);
      await until(() => !worker || !alive(worker), "the worker to end");
    }
  });
});

describe("pyctl install-service (launchd)", () => {
  test("plist: label, program arguments, restart on failure only, sessions outlive the daemon; removed again", async () => {
    const e = makeEnv();
    const dir = join(e.dir, "LaunchAgents");
    const r = await pyctl(e, ["install-service", "--format", "launchd", "--dir", dir, "--listen", "127.0.0.1:7399"]);
    expect(r.stderr).toBe("");
    const path = join(dir, "dev.pythond.daemon.plist");
    expect(r.stdout).toContain(`  launchctl bootstrap gui/$(id -u) ${path}\n`);
    const check = `
import plistlib, sys, json
p = plistlib.load(open(sys.argv[1], "rb"))
print(json.dumps(p, sort_keys=True))`;
    const parsed = await exec(["python3", "-c", check, path], e);
    expect(parsed.stderr).toBe("");
    expect(JSON.parse(parsed.stdout)).toEqual({
      AbandonProcessGroup: true,
      EnvironmentVariables: { PYTHOND_SUPERVISED: "1" },
      KeepAlive: { SuccessfulExit: false },
      Label: "dev.pythond.daemon",
      ProgramArguments: [BIN, "daemon", "--listen", "127.0.0.1:7399"],
      RunAtLoad: true,
      StandardErrorPath: join(e.home, "Library/Logs/pythond.log"),
      ThrottleInterval: 1,
    });
    const u = await pyctl(e, ["uninstall-service", "--format", "launchd", "--dir", dir]);
    expect(u.stdout).toBe(`removed ${path}\nthen:\n  launchctl bootout gui/$(id -u)/dev.pythond.daemon\n`);
    expect(existsSync(path)).toBe(false);
  });
});
