/**
 * `pythond join … --install-service` from the built binary against a real hub on loopback: the
 * node joins once in the foreground with its token; the same command line with --install-service
 * writes the user unit (verified by systemd-analyze), without the token; the unit's ExecStart,
 * run for real with the unit's environment, joins again from the node's kept identity and the
 * hub runs a cell on it. `pyctl uninstall-service --node` removes the unit. Bad input: no URL,
 * --run-as without --system.
 * There is no systemd manager in this container (PID 1 is not systemd): systemctl is not run.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { BIN, exec, LineWatcher, PYCTL, until } from "./harness.ts";
import { Hub, Node } from "./fleet-harness.ts";

let hub: Hub;

beforeAll(async () => {
  hub = await Hub.start();
}, 60_000);

afterAll(async () => {
  await hub?.[Symbol.asyncDispose]();
});

/** ExecStart= split the way systemd does for our simple and double-quoted words. */
function execStart(unit: string): string[] {
  const line = /^ExecStart=(.*)$/m.exec(unit)![1]!;
  return [...line.matchAll(/"((?:[^"\\]|\\.)*)"|(\S+)/g)].map((m) => (m[1] !== undefined ? m[1].replace(/\\(.)/g, "$1") : m[2]!).replace(/%%/g, "%").replace(/\$\$/g, "$"));
}

/** Environment= lines of a unit, as a record. */
function unitEnv(unit: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of unit.matchAll(/^Environment="?([^=]+)=([^"\n]*)"?$/gm)) out[m[1]!] = m[2]!;
  return out;
}

describe("pythond join --install-service", () => {
  test("the node's own command line becomes its service; the unit's command joins and serves the hub", async () => {
    const t = await hub.joinToken();
    await using node = new Node();
    const args = [`wss://127.0.0.1:${hub.port}`, "--token", t.token, "--fingerprint", t.fingerprint, "--id", "svc-node", "--label", "role=svc", "--heartbeat", "1"];
    // First join in the foreground, with the token.
    await node.join(args);
    await until(async () => (await hub.node("svc-node"))?.state === "online", "svc-node online");
    await node.kill("SIGTERM");

    const r = await exec([BIN, "join", ...args, "--install-service"], node.e);
    expect(r.stderr).toBe("");
    const path = join(node.e.home, ".config/systemd/user/pythond-node.service");
    expect(r.stdout).toStartWith(`wrote ${path}\nthe join token is not in the unit (others can read it): join once in the foreground with --token first\n`);
    expect(r.stdout).toContain("systemctl --user enable --now pythond-node.service");
    const unit = readFileSync(path, "utf8");
    expect(unit).not.toContain(t.token);
    const cmd = execStart(unit);
    expect(cmd).toEqual([BIN, "join", `wss://127.0.0.1:${hub.port}`, "--fingerprint", t.fingerprint, "--id", "svc-node", "--label", "role=svc", "--heartbeat", "1"]);
    expect(unitEnv(unit).PYTHOND_SUPERVISED).toBe("1");

    if (Bun.which("systemd-analyze")) {
      const xdg = join(node.e.dir, "xdg-run");
      mkdirSync(xdg, { recursive: true, mode: 0o700 });
      const v = await exec(["systemd-analyze", "--user", "verify", path], node.e, { env: { XDG_RUNTIME_DIR: xdg } });
      expect({ code: v.code, stderr: v.stderr }).toEqual({ code: 0, stderr: "" });
    }

    // What systemd would start: the unit's command and environment, no token.
    const proc = Bun.spawn(cmd, { env: { ...node.e.env, ...unitEnv(unit) }, cwd: node.e.dir, stdout: "pipe", stderr: "pipe" });
    node.proc = proc;
    node.log = new LineWatcher(proc.stderr as ReadableStream<Uint8Array>);
    await node.log.waitFor(/joined: /);
    await until(async () => (await hub.node("svc-node"))?.state === "online", "svc-node online again");
    expect((await hub.pysh(["new", "svc-node/w"])).code).toBe(0);
    expect((await hub.pysh(["run", "svc-node/w", "6 * 7"])).stdout).toBe("42\n");

    const u = await exec([PYCTL, "uninstall-service", "--node"], node.e);
    expect(u.code).toBe(0);
    expect(u.stdout).toStartWith(`removed ${path}\n`);
    expect(existsSync(path)).toBe(false);
  }, 60_000);

  test("--print shows the unit and writes nothing; bad input is refused with a clear error", async () => {
    await using node = new Node();
    const p = await exec([BIN, "join", "wss://127.0.0.1:1", "--fingerprint", "ab:cd", "--install-service", "--print"], node.e);
    expect(p.code).toBe(0);
    expect(execStart(p.stdout)).toEqual([BIN, "join", "wss://127.0.0.1:1", "--fingerprint", "ab:cd"]);
    expect(existsSync(join(node.e.home, ".config"))).toBe(false);
    const noUrl = await exec([BIN, "join", "--install-service"], node.e);
    expect(noUrl).toEqual({ code: 1, stdout: "", stderr: "ERR --install-service: give the hub URL (wss://HOST:PORT) the service should join\n" });
    const runAs = await exec([BIN, "join", "wss://127.0.0.1:1", "--install-service", "--run-as", "svc"], node.e);
    expect(runAs).toEqual({ code: 1, stdout: "", stderr: "ERR --run-as applies to --system services\n" });
    expect(existsSync(join(node.e.home, ".config"))).toBe(false);
  });
});
