/**
 * The daemons start themselves again with glibc's rep-movsb threshold raised on AMD x86-64 Linux
 * (src/daemon/memcpy-tune.ts), against the real binary: the same process id, the setting in the
 * daemon's own environment, and none of it in what the daemon starts (a Python session, a node's
 * shell command); the user's own GLIBC_TUNABLES reaches them as it was; PYTHOND_TUNE_MEMCPY=0 and
 * other machines: no start again.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { wantsMemcpyTune } from "../../src/daemon/memcpy-tune.ts";
import { Hub, Node } from "./fleet-harness.ts";
import { makeEnv, startDaemon, type Env } from "./harness.ts";

/** What this machine should do (the same test holds elsewhere: then nothing is tuned). */
const tunes = wantsMemcpyTune({});

/** An environment without any memcpy setting of the caller's own (a CI machine might have one). */
function cleanEnv(): Env {
  const e = makeEnv();
  delete e.env.GLIBC_TUNABLES;
  delete e.env.PYTHOND_TUNE_MEMCPY;
  return e;
}
const environ = (pid: number) => readFileSync(`/proc/${pid}/environ`, "latin1").split("\0");
const SETTING = "GLIBC_TUNABLES=glibc.cpu.x86_rep_movsb_threshold=1073741824";
const SHOW = "import os; print(repr(os.environ.get('GLIBC_TUNABLES')), repr(os.environ.get('PYTHOND_MEMCPY_TUNED')))";

describe("memcpy tune", () => {
  test("a daemon: tuned itself, same pid; its sessions see the environment as the user gave it", async () => {
    await using d = await startDaemon([], cleanEnv());
    expect(environ(d.pid).includes(SETTING)).toBe(tunes);
    expect(d.log.text).toContain(`(pid ${d.pid})`); // started again in place, not as a child
    expect((await d.pysh(["new", "s"])).code).toBe(0);
    expect((await d.pysh(["run", "s", SHOW])).stdout).toBe("None None\n");
  });

  test("the user's own GLIBC_TUNABLES reaches the sessions unchanged", async () => {
    const e = cleanEnv();
    e.env.GLIBC_TUNABLES = "glibc.malloc.check=0";
    await using d = await startDaemon([], e);
    expect((await d.pysh(["new", "s"])).code).toBe(0);
    expect((await d.pysh(["run", "s", SHOW])).stdout).toBe("'glibc.malloc.check=0' None\n");
  });

  test("PYTHOND_TUNE_MEMCPY=0: not started again", async () => {
    const e = cleanEnv();
    e.env.PYTHOND_TUNE_MEMCPY = "0";
    await using d = await startDaemon([], e);
    expect(environ(d.pid).some((v) => v.startsWith("GLIBC_TUNABLES=") || v.startsWith("PYTHOND_MEMCPY_TUNED="))).toBe(false);
  });

  test("a node (pythond join): tuned itself; a shell command on it sees none of it", async () => {
    await using hub = await Hub.start();
    const t = await hub.joinToken();
    const args = [`wss://127.0.0.1:${hub.port}`, "--token", t.token, "--fingerprint", t.fingerprint, "--id", "n1"];
    await using node = await new Node(cleanEnv()).join(args);
    expect(environ(node.pid).includes(SETTING)).toBe(tunes);
    const r = await hub.pysh(["sh", "n1", "--", "env"]);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain("GLIBC_TUNABLES");
    expect(r.stdout).not.toContain("PYTHOND_MEMCPY_TUNED");
  });
});
