/**
 * The TypeScript library's fleet calls (`pythond/client`, src/client/fleet*.ts) against the real
 * binary: a hub (TLS listener on loopback) and real `pythond join` nodes with private homes.
 * nodes, waitForNode, sh (bytes, stdin, cwd/env, timeout, signals), shStream, shDetached/job/jobs,
 * shMany with an offline node, sessions on a node, put/get/readFile/writeFile, and the faults:
 * an unknown node, a node SIGKILLed mid-command.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync, writeFileSync, existsSync, statSync, truncateSync } from "node:fs";
import { join } from "node:path";
import { connect, NodeCommandLost, PythondError, type PythondClient } from "pythond/client";
import { Hub, joinNode, type Node } from "./fleet-harness.ts";
import { exec, makeEnv, PYCTL, until } from "./harness.ts";

let hub: Hub;
let n1: Node;
let n2: Node;
let c: PythondClient;

beforeAll(async () => {
  hub = await Hub.start();
  n1 = await joinNode(hub, "n1", ["--label", "role=web"]);
  n2 = await joinNode(hub, "n2", ["--label", "role=web", "--label", "tier=b"]);
  c = await connect({ socket: hub.d.e.sock });
});
afterAll(async () => {
  c?.close();
  await n1?.[Symbol.asyncDispose]();
  await n2?.[Symbol.asyncDispose]();
  await hub?.[Symbol.asyncDispose]();
});

async function code(p: Promise<unknown>): Promise<PythondError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(PythondError);
    return e as PythondError;
  }
  throw new Error("expected a PythondError");
}

describe("nodes", () => {
  test("nodes() lists them with labels; waitForNode resolves when a node joins, times out clearly otherwise", async () => {
    const ns = await c.nodes();
    expect(ns.map((n) => n.id)).toEqual(["n1", "n2"]);
    expect(ns[0]).toMatchObject({ id: "n1", state: "online", labels: { role: "web" }, os: "linux" });
    expect(typeof ns[0]!.since).toBe("string");

    const waiting = c.waitForNode("n3", { timeoutMs: 30_000 });
    const n3 = await joinNode(hub, "n3");
    try {
      expect(await waiting).toMatchObject({ id: "n3", state: "online" });
    } finally {
      await n3[Symbol.asyncDispose]();
    }
    await until(async () => (await c.nodes()).find((n) => n.id === "n3")?.state === "offline", "n3 offline");
    const e = await code(c.waitForNode("nobody", { timeoutMs: 300 }));
    expect(e.code).toBe("timeout");
    expect(e.message).toContain("node 'nobody' is not online after 0.3 s (it has not joined this hub");
    // n3 is enrolled, and offline now
    const off = await code(c.waitForNode("n3", { timeoutMs: 200 }));
    expect(off.message).toMatch(/node 'n3' is not online after 0\.2 s \(offline since \d{4}-/);
  }, 60_000);
});

describe("sh", () => {
  test("bytes exact on stdout and stderr, exit code, text helpers, cwd and env", async () => {
    const r = await c.sh("n1", "printf 'a\\377\\000b'; printf 'e\\376' >&2; exit 3");
    expect([...r.stdout]).toEqual([0x61, 0xff, 0x00, 0x62]);
    expect([...r.stderr]).toEqual([0x65, 0xfe]);
    expect(r).toMatchObject({ node: "n1", exitCode: 3, code: 3, signal: null, timedOut: false, stdoutBytes: 4, stderrBytes: 2, ok: false });
    expect(r.id).toMatch(/^[0-9a-f]{12}$/);
    expect(r.durationMs).toBeGreaterThanOrEqual(0);
    expect(() => r.check()).toThrow(/command on 'n1' exited 3\ne\ufffd/);
    const e = await c.sh("n1", 'echo "$A" "$(pwd)" "$HOME"', { cwd: "/tmp", env: { A: "b c" } });
    expect(e.stdoutText).toBe(`b c /tmp ${n1.e.home}\n`);
    expect(e.check().ok).toBe(true);
  });

  test("stdin as a string or bytes; a big output whole; maxOutputBytes keeps a prefix and counts all", async () => {
    expect((await c.sh("n1", "tr a-z A-Z", { stdin: "hello\n" })).stdoutText).toBe("HELLO\n");
    const bytes = new Uint8Array(600_000).map((_, i) => (i * 7) & 0xff);
    const r = await c.sh("n1", "sha256sum", { stdin: bytes });
    expect(r.stdoutText.split(" ")[0]).toBe(new Bun.CryptoHasher("sha256").update(bytes).digest("hex"));
    const big = await c.sh("n1", "head -c 3000000 /dev/zero");
    expect(big.stdout.length).toBe(3_000_000);
    const cut = await c.sh("n1", "head -c 100000 /dev/zero; echo err >&2", { maxOutputBytes: 1000 });
    expect(cut.stdout.length).toBe(1000);
    expect(cut.stdoutBytes).toBe(100_000);
    expect(cut.stderrText).toBe("err\n");
  });

  test("timeoutMs: the group is ended, timedOut and exit 124; a signal: 128+n", async () => {
    const t = await c.sh("n1", "echo started; sleep 30", { timeoutMs: 300 });
    expect(t).toMatchObject({ timedOut: true, exitCode: 124 });
    expect(t.stdoutText).toBe("started\n");
    const k = await c.sh("n1", "kill -9 $$");
    expect(k).toMatchObject({ exitCode: 137, signal: "SIGKILL", code: null });
  });

  test("shStream yields output as produced, bytes exact, then the result", async () => {
    const s = c.shStream("n2", "printf 'x\\000'; echo two >&2; head -c 2000000 /dev/zero");
    const got: Record<number, number[]> = { 1: [], 2: [] };
    let total = 0;
    for await (const { fd, data } of s) {
      if (got[fd]!.length < 4) got[fd]!.push(...data.subarray(0, 4 - got[fd]!.length));
      total += data.length;
    }
    expect(got[1]).toEqual([0x78, 0x00, 0, 0]);
    expect(Buffer.from(got[2]!).toString()).toBe("two\n");
    expect(total).toBe(2 + 4 + 2_000_000);
    expect(await s.result).toMatchObject({ node: "n2", exitCode: 0, stdoutBytes: 2_000_002, stderrBytes: 4 });
  });

  test("errors: unknown node (its name and the nodes there are), invalid id, empty command", async () => {
    const e = await code(c.sh("nope", "true"));
    expect(e.code).toBe("no_node");
    expect(e.message).toContain("no node 'nope' -- nodes: n1, n2");
    expect((await code(c.sh("bad id", "true"))).code).toBe("invalid_name");
    expect((await code(c.sh("n1", " "))).code).toBe("usage");
    expect((await code(c.sh("n1", "true", { env: { "A-B": "x" } }))).code).toBe("usage");
  });
});

describe("jobs", () => {
  test("shDetached returns the id at once; job shows state and kept output; wait; list; kill", async () => {
    const flag = join(n1.e.home, "go");
    const id = await c.shDetached("n1", `echo one; while [ ! -e ${flag} ]; do sleep 0.05; done; echo two; exit 4`);
    const running = await c.job("n1", id);
    expect(running).toMatchObject({ node: "n1", id, state: "running", exit: null });
    const early = await code(c.job("n1", id, { wait: true, timeoutMs: 300 }));
    expect(early.code).toBe("timeout");
    expect((await c.jobs("n1")).map((j) => j.id)).toContain(id);
    writeFileSync(flag, "");
    const done = await c.job("n1", id, { wait: true });
    expect(done).toMatchObject({ id, exitCode: 4 });
    expect(done.stdoutText).toBe("one\ntwo\n");
    const info = await c.job("n1", id);
    expect(info.state).toBe("exited");
    expect(info.exit).toMatchObject({ exitCode: 4 });
    expect(Buffer.from(info.stdout).toString()).toBe("one\ntwo\n");

    const long = await c.shDetached("n1", "sleep 60");
    const killed = await c.job("n1", long, { kill: true });
    expect(killed).toMatchObject({ id: long, signal: "SIGTERM", exitCode: 143 });
    expect((await code(c.job("n1", "000000000000"))).code).toBe("no_job");
  });
});

describe("shMany", () => {
  test("results per node as they finish, offline matching nodes reported; '*' and a label object", async () => {
    const byNode = new Map<string, { status: string; out?: string; exit?: number }>();
    for await (const r of c.shMany({ role: "web" }, "echo hi")) {
      byNode.set(r.node, { status: r.status, out: r.result?.stdoutText, exit: r.result?.exitCode });
    }
    expect([...byNode.keys()].sort()).toEqual(["n1", "n2"]);
    expect(byNode.get("n1")).toMatchObject({ status: "ok", exit: 0 });
    expect(byNode.get("n2")).toMatchObject({ status: "ok", out: "hi\n" });

    // every node, n3 (enrolled above, offline now) included, and a node that fails
    const all = [];
    for await (const r of c.shMany("*", `test "$HOME" != "${n2.e.home}"`, { maxConcurrency: 1 })) all.push(r);
    const s = Object.fromEntries(all.map((r) => [r.node, r.status]));
    expect(s).toEqual({ n1: "ok", n2: "failed", n3: "offline" });
    const off = all.find((r) => r.node === "n3")!;
    expect(off.error?.code).toBe("node_offline");
    expect(off.offlineSince).toMatch(/^\d{4}-/);

    // fail-fast, one at a time: after n1 fails no other node starts
    const ff = [];
    for await (const r of c.shMany("*", "exit 1", { failFast: true, maxConcurrency: 1 })) ff.push([r.node, r.status]);
    expect(Object.fromEntries(ff)).toEqual({ n1: "failed", n2: "skipped", n3: "skipped" });

    expect((await code(c.shMany("tier=zzz", "true").next())).code).toBe("no_node");
    expect((await code(c.shMany("no equals", "true").next())).code).toBe("usage");
  });
});

describe("a remote client", () => {
  test("over TLS with host/token and a pinned certificate: node calls open their connections the same way", async () => {
    const mine = makeEnv();
    const pin = await exec([PYCTL, "pin", hub.l.certPath], mine);
    expect(pin.code).toBe(0);
    const home = process.env.HOME;
    process.env.HOME = mine.home; // the library reads pins from ~/.pythond/tls, as pysh
    try {
      const rc = await connect({ host: `127.0.0.1:${hub.port}`, token: hub.l.token, tls: true });
      try {
        expect((await rc.nodes()).map((n) => n.id)).toContain("n1");
        expect((await rc.sh("n1", "echo far")).stdoutText).toBe("far\n");
        const seen = [];
        for await (const r of rc.shMany("role=web", "true")) seen.push(r.status);
        expect(seen).toEqual(["ok", "ok"]);
        await rc.writeFile("n1", "far.txt", "far away");
        expect(Buffer.from((await rc.readFile("n1", "far.txt", { offset: 4 })).data).toString()).toBe("away");
      } finally {
        rc.close();
      }
    } finally {
      process.env.HOME = home;
    }
  });
});

describe("sessions on a node", () => {
  test("new('n1/work'), run, state kept, vars, session('n1/work'), kill", async () => {
    const s = await c.new("n1/work");
    expect((await s.run("import os\nx = 41\nprint(os.environ['HOME'])")).output).toBe(`${n1.e.home}\n`);
    const again = c.session("n1/work");
    expect((await again.run("x + 1")).output).toBe("42\n");
    expect(await again.vars()).toContain("x");
    const bad = await again.run("1/0");
    expect(bad.ok).toBe(false);
    expect(bad.error).toContain("ZeroDivisionError");
    await again.kill();
    expect((await code(c.session("n1/work").run("1"))).code).toBe("no_session");
  });
});

describe("files", () => {
  test("put/get files and directories (mode kept), writeFile atomic, readFile ranges, clear errors", async () => {
    const local = join(hub.d.e.dir, "up");
    mkdirSync(join(local, "sub"), { recursive: true });
    const blob = new Uint8Array(700_000).map((_, i) => (i * 31) & 0xff);
    writeFileSync(join(local, "sub", "b.bin"), blob);
    writeFileSync(join(local, "run.sh"), "#!/bin/sh\necho ok\n", { mode: 0o750 });
    const put = await c.put("n2", join(local, "run.sh"), "run.sh");
    expect(put).toMatchObject({ target: join(n2.e.home, "run.sh"), files: 1, bytes: 18, resumed: 0 });
    expect(statSync(join(n2.e.home, "run.sh")).mode & 0o777).toBe(0o750);
    expect((await c.put("n2", local, ".", { recursive: true })).files).toBe(2);
    expect(readFileSync(join(n2.e.home, "up", "sub", "b.bin"))).toEqual(Buffer.from(blob));

    const back = join(hub.d.e.dir, "down");
    mkdirSync(back);
    const got = await c.get("n2", "up", back, { recursive: true });
    expect(got.target).toBe(join(back, "up"));
    expect(readFileSync(join(back, "up", "sub", "b.bin"))).toEqual(Buffer.from(blob));

    const w = await c.writeFile("n2", "note.txt", "héllo\n");
    expect(w.bytes).toBe(7);
    expect(readFileSync(join(n2.e.home, "note.txt"), "utf8")).toBe("héllo\n");
    expect(existsSync(join(n2.e.home, "stdin"))).toBe(false);
    // into an existing directory: under the name given, as cp does
    expect((await c.writeFile("n2", "up", new Uint8Array([0, 1, 2]))).target).toBe(join(n2.e.home, "up", "up"));

    const all = await c.readFile("n2", "up/sub/b.bin");
    expect(all).toMatchObject({ size: 700_000, offset: 0, eof: true });
    expect(Buffer.from(all.data)).toEqual(Buffer.from(blob));
    const mid = await c.readFile("n2", "up/sub/b.bin", { offset: 300_000, length: 10 });
    expect(mid).toMatchObject({ size: 700_000, offset: 300_000, eof: false });
    expect([...mid.data]).toEqual([...blob.subarray(300_000, 300_010)]);
    const tail = await c.readFile("n2", "up/sub/b.bin", { offset: 699_995, length: 100 });
    expect(tail.data.length).toBe(5);
    expect(tail.eof).toBe(true);
    // the end of a big file: the node starts at the offset, the prefix never crosses the link
    // (the bytes the node's link socket sent, from the kernel: ss -ti)
    const big = join(n2.e.home, "big.log");
    writeFileSync(big, "");
    truncateSync(big, 300 << 20);
    writeFileSync(big, "the last line\n", { flag: "a" });
    const before = linkBytesSent(n2.pid);
    const last = await c.readFile("n2", "big.log", { offset: (300 << 20) + 4, length: 4096 });
    expect(Buffer.from(last.data).toString()).toBe("last line\n");
    expect(last).toMatchObject({ size: (300 << 20) + 14, offset: (300 << 20) + 4, eof: true });
    expect(linkBytesSent(n2.pid) - before).toBeLessThan(8 << 20);

    const nf = await code(c.readFile("n2", "no-such-file"));
    expect(nf.code).toBe("not_found");
    expect(nf.message).toContain("(on 'n2')");
    const dir = await code(c.readFile("n2", "up"));
    expect(dir.code).toBe("is_directory");
    expect((await code(c.put("n2", join(local, "absent"), "x"))).code).toBe("not_found");
    expect((await code(c.get("nope", "x", back))).code).toBe("no_node");
  });
});

/** Bytes sent so far on the TCP connections of process `pid` to the hub (tcp_info, via ss). */
function linkBytesSent(pid: number): number {
  const r = Bun.spawnSync(["ss", "-tinpH", "state", "established", `( dport = :${hub.port} )`]);
  const out = r.stdout.toString();
  let total = 0;
  let mine = false;
  for (const line of out.split("\n")) {
    if (/^\S/.test(line) || /users:\(/.test(line)) mine = line.includes(`pid=${pid},`);
    const m = /bytes_sent:(\d+)/.exec(line);
    if (mine && m) total += Number(m[1]);
  }
  if (!out.includes(`pid=${pid},`)) throw new Error(`no connection of pid ${pid} to the hub in: ${out.slice(0, 500)}`);
  return total;
}

describe("faults", () => {
  test("a node SIGKILLed mid-command: NodeCommandLost with the job id; the node is then offline", async () => {
    const n4 = await joinNode(hub, "n4");
    try {
      let started = "";
      const seen: string[] = [];
      const s = c.shStream("n4", "echo first; while :; do echo tick; sleep 0.1; done", { onStart: (id) => (started = id) });
      for await (const { data } of s) {
        seen.push(Buffer.from(data).toString());
        if (seen.join("").includes("first")) break;
      }
      // leaving the loop early closed the tunnel only: the command runs on
      expect((await c.job("n4", started)).state).toBe("running");
      // the same through sh(): kill the node while the command runs
      let onStart!: (id: string) => void;
      const running = new Promise<string>((r) => (onStart = r));
      const p = c.sh("n4", "echo go; while :; do echo tick; sleep 0.1; done", { onStart });
      const failed = code(p);
      const id = await running;
      await n4.kill("SIGKILL");
      const e = await failed;
      expect(e).toBeInstanceOf(NodeCommandLost);
      expect(e.code).toBe("node_offline");
      expect((e as NodeCommandLost).jobId).toBe(id);
      expect(e.message).toContain(`lost the link to node 'n4' during the command (job ${id})`);
      await until(async () => (await c.nodes()).find((n) => n.id === "n4")?.state === "offline", "n4 offline");
      const after = await code(c.sh("n4", "true"));
      expect(after.code).toBe("node_offline");
      expect(after.message).toContain("node 'n4' is offline");
    } finally {
      await n4[Symbol.asyncDispose]();
    }
  }, 60_000);
});
