/**
 * The fleet, as a user meets it: a hub, `pyctl join-token`, the command it prints run on two
 * "machines" (real `pythond join` processes with their own HOMEs), then `pysh nodes`, `pysh ls`,
 * and Python sessions on a node driven from the hub with `node/session` names. Loopback only.
 */
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { rawClient, until } from "./harness.ts";
import { accessLogWith, Hub, Node } from "./fleet-harness.ts";

let hub: Hub;
let w1: Node;
let w2: Node;
beforeAll(async () => {
  hub = await Hub.start();
});
afterAll(async () => {
  await w1?.[Symbol.asyncDispose]();
  await w2?.[Symbol.asyncDispose]();
  await hub?.[Symbol.asyncDispose]();
});

describe("joining", () => {
  test("join-token prints the whole command; running it joins the node", async () => {
    const t = await hub.joinToken(["--label", "role=web", "--label", "zone=a"]);
    expect(t.stdout).toMatch(/^# join token [0-9a-f]{8}: expires \S+ \S+ UTC, reusable until then, labels role=web,zone=a\n/);
    expect(t.command.slice(0, 3)).toEqual(["pythond", "join", `wss://127.0.0.1:${hub.port}`]);
    expect(t.fingerprint).toBe(hub.l.fingerprint);
    w1 = await new Node().join([...t.command.slice(2), "--id", "worker-1", "--heartbeat", "1"]);
    expect(w1.log.text).toContain("joined: 127.0.0.1:");
    expect(w1.log.text).toContain("as node 'worker-1' (enrolled now)");
    // the join token is not left in the node's command line for other local users (`ps`)
    const token = t.command[t.command.indexOf("--token") + 1]!;
    expect(readFileSync(`/proc/${w1.pid}/cmdline`, "utf8")).not.toContain(token);
    // a second machine with the same (reusable) token, its id generated and kept
    w2 = await new Node().join([...t.command.slice(2), "--label", "gpu=1", "--heartbeat", "1"]);
    const id2 = /as node '([^']+)'/.exec(w2.log.text)![1]!;
    expect(id2).toMatch(/^[a-z0-9-]+-[0-9a-f]{6}$/);
    const list = await hub.pysh(["nodes", "--json"]);
    const nodes = JSON.parse(list.stdout) as Array<Record<string, unknown>>;
    expect(nodes.map((n) => n.id).sort()).toEqual([id2, "worker-1"].sort());
    const n1 = nodes.find((n) => n.id === "worker-1")!;
    expect(n1).toMatchObject({ state: "online", os: process.platform, arch: process.arch, version: expect.any(String), labels: { role: "web", zone: "a" } });
    expect(String(n1.address)).toStartWith("127.0.0.1:");
    expect(nodes.find((n) => n.id === id2)!.labels).toEqual({ gpu: "1", role: "web", zone: "a" });
    await accessLogWith(hub.d, /event=auth .*status=ok .*method=mtls kind=node node=worker-1 enrolled=yes/);
    await accessLogWith(hub.d, /event=node .*status=ok .*node=worker-1 event_detail=joined/);
  });

  test("the hub says how many node links its open-file limit allows", async () => {
    await hub.d.log.waitFor(/fleet: open-file limit (\d+) .*: room for about [\d,]+ node links \(one descriptor each\)/);
  });

  test("nodes shows heartbeats and round-trip times; ls lists each node on one line", async () => {
    await until(async () => (await hub.node("worker-1"))?.last_heartbeat !== null, "a heartbeat from worker-1");
    const n = (await hub.node("worker-1"))!;
    expect(n.rtt_ms).toBeGreaterThan(0);
    expect(n.sessions).toBe(0);
    const table = (await hub.pysh(["nodes"])).stdout.split("\n");
    expect(table[0]).toMatch(/^ID +STATE +ADDRESS +HOST +OS\/ARCH +VERSION +LABELS +SESSIONS +HEARTBEAT +RTT$/);
    expect(table.find((l) => l.startsWith("worker-1"))).toMatch(/^worker-1 +online +127\.0\.0\.1:\d+ +\S+ +\w+\/\w+ +\S+ +role=web,zone=a +0 +\d+s ago +[\d.]+ms$/);
    expect((await hub.pysh(["ls"])).stdout).toMatch(/^  worker-1: node online 127\.0\.0\.1:\d+ \w+\/\w+ 0 sessions$/m);
  });

  test("completion offers the hub's node names (pysh sh/ls/put, pyctl node forget)", async () => {
    const id2 = (JSON.parse((await hub.pysh(["nodes", "--json"])).stdout) as Array<{ id: string }>).map((n) => n.id).find((i) => i !== "worker-1")!;
    expect((await hub.pysh(["__complete", "sh", ""])).stdout.split("\n").filter(Boolean).sort()).toEqual([id2, "worker-1"].sort());
    expect((await hub.pysh(["__complete", "ls", "work"])).stdout).toBe("worker-1\n");
    expect((await hub.pysh(["__complete", "put", "wor"])).stdout).toBe("worker-1\n");
    expect((await hub.pyctl(["__complete", "node", ""])).stdout).toBe("forget\n");
    expect((await hub.pyctl(["__complete", "node", "forget", "worker"])).stdout).toBe("worker-1\n");
    // the table checks the line first: an unknown option of a node command does nothing
    const r = await hub.pysh(["sh", "worker-1", "--no-such", "--", "touch", "/nonexistent-never"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toStartWith("ERR unknown option --no-such for pysh sh; ");
  });

  test("the node is an ordinary daemon: its own socket and sessions, no port opened", async () => {
    expect((await w1.pysh(["new", "mine"])).code).toBe(0);
    expect((await w1.pysh(["run", "mine", "6 * 7"])).stdout).toBe("42\n");
    expect((await w1.pyctl(["status"])).stdout).toContain("alive: True");
    expect(JSON.parse((await w1.pysh(["status", "mine"])).stdout).state).toBe("idle");
    expect((await w1.pysh(["kill", "mine"])).code).toBe(0);
  });
});

describe("sessions on a node, from the hub", () => {
  test("new, run (streamed, tracebacks, exit codes), fire, poll, wait, status, vars, complete", async () => {
    expect((await hub.pysh(["new", "worker-1/work"])).stdout).toMatch(/^OK work pid=\d+\n$/);
    const pid = Number((await hub.pysh(["run", "worker-1/work", "import os; os.getpid()"])).stdout);
    expect(JSON.parse((await w1.pysh(["status", "work"])).stdout).pid).toBe(pid); // it lives on worker-1
    expect((await hub.pysh(["run", "worker-1/work", "x = 41"])).code).toBe(0);
    expect((await hub.pysh(["run", "worker-1/work", "x + 1"])).stdout).toBe("42\n");
    const err = await hub.pysh(["run", "worker-1/work", "raise ValueError('far away')"]);
    expect(err.code).toBe(1);
    expect(err.stderr).toStartWith("ERR execution failed\nTraceback");
    expect(err.stderr).toContain("ValueError: far away");
    const big = await hub.pysh(["run", "worker-1/work", "print('y' * 3_000_000)"]);
    expect(big.stdout.length).toBe(3_000_001);
    const fired = JSON.parse((await hub.pysh(["fire", "worker-1/work", "import time; time.sleep(0.3); f = 7; print('fired out')"])).stdout);
    expect(fired.status).toBe("fired");
    const waited = await hub.pysh(["wait", "worker-1/work", fired.cell_id]);
    expect(waited).toMatchObject({ code: 0, stdout: "fired out\n" });
    expect(JSON.parse((await hub.pysh(["poll", "worker-1/work", fired.cell_id])).stdout)).toMatchObject({ status: "done" });
    expect(JSON.parse((await hub.pysh(["vars", "worker-1/work"])).stdout).vars).toEqual(expect.arrayContaining(["x", "f"]));
    expect(JSON.parse((await hub.pysh(["status", "worker-1/work"])).stdout)).toMatchObject({ state: "idle", pid });
    expect(JSON.parse((await hub.pysh(["complete", "worker-1/work", "os.pat"])).stdout).matches).toContain("os.path");
    const forked = JSON.parse((await hub.pysh(["fork", "worker-1/work", "g = x * 2"])).stdout);
    expect((await hub.pysh(["wait", "worker-1/work", forked.cell_id])).code).toBe(0);
    expect((await hub.pysh(["run", "worker-1/work", "g"])).stdout).toBe("82\n");
  });

  test("int reaches the running cell on the node; the session lives on", async () => {
    const running = hub.pysh(["run", "worker-1/work", "import time; print('started', flush=True); time.sleep(60)"]);
    await until(async () => JSON.parse((await w1.pysh(["status", "work"])).stdout).state === "running", "the cell to run");
    expect((await hub.pysh(["int", "worker-1/work"])).stdout).toStartWith("OK int work: 1 run (interrupted)");
    const r = await running;
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("started\n");
    expect(r.stderr).toContain("KeyboardInterrupt");
    expect((await hub.pysh(["run", "worker-1/work", "x"])).stdout).toBe("41\n");
  });

  test("pysh ls NODE lists that node's sessions; the node's line counts them", async () => {
    expect((await hub.pysh(["ls", "worker-1"])).stdout).toMatch(/^  work: alive pid=\d+ \(pty\)\n$/);
    await until(async () => (await hub.node("worker-1"))?.sessions === 1, "the heartbeat to count the session");
    expect((await hub.pysh(["ls"])).stdout).toMatch(/worker-1: node online .* 1 session$/m);
  });

  test("attach through the hub: terminal bytes both ways, detach", async () => {
    const c = await rawClient(hub.d.e.sock, ["pythond.1"]);
    expect(await c.ask("attach worker-1/work 24 80")).toBe("OK attached");
    let screen = "";
    const until = async (what: string) => {
      while (!screen.includes(what)) {
        const m = await c.next();
        if (typeof m !== "string") screen += new TextDecoder().decode(m as ArrayBuffer);
      }
    };
    await until(">>> ");
    c.send(new TextEncoder().encode("print(6 * 7 + 1000)\r"));
    await until("1042");
    expect(await c.ask("resize worker-1/work 30 100")).toBe("OK resized 30x100");
    expect(await c.ask("detach")).toBe("OK detached");
    c.close();
    expect((await hub.pysh(["run", "worker-1/work", "_"])).code).toBe(0);
  });

  test("kill ends the node's session; every command is in the hub's access log with the node id", async () => {
    expect((await hub.pysh(["kill", "worker-1/work"])).stdout).toBe("OK killed work\n");
    expect((await w1.pysh(["ls"])).stdout).toBe("(no sessions)\n");
    const log = await accessLogWith(hub.d, /event=result .*cmd=kill session=worker-1\/work status=ok .*node=worker-1/);
    expect(log).toMatch(/event=command .*cmd=run session=worker-1\/work .*node=worker-1/);
  });
});

describe("bad input", () => {
  test("an unknown node: ERR no node 'x' -- nodes: …, exit 1", async () => {
    const r = await hub.pysh(["run", "nope/work", "1"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^ERR no node 'nope' -- nodes: (\S+, )?worker-1(, \S+)?\n$/);
    expect((await hub.pysh(["ls", "nope"])).stderr).toStartWith("ERR no node 'nope' -- nodes: ");
    expect((await hub.pysh(["new", "worker-1/Bad Name"])).code).toBe(1);
  });

  test("node ids and labels with spaces, slashes or control characters are refused before anything starts", async () => {
    const n = new Node();
    try {
      const base = [`wss://127.0.0.1:${hub.port}`, "--token", "x.y", "--fingerprint", hub.l.fingerprint];
      const cases: Array<[string[], RegExp]> = [
        [["--id", "bad id"], /^ERR invalid node id "bad id": it has spaces/],
        [["--id", "a/b"], /^ERR invalid node id "a\/b": it has a slash/],
        [["--id", "a\x07b"], /^ERR invalid node id "a\\u0007b": it has control characters/],
        [["--label", "role=a b"], /^ERR invalid label value "a b" for role: it has spaces/],
        [["--label", "ro/le=x"], /^ERR invalid label key "ro\/le": it has a slash/],
        [["--label", "novalue"], /^ERR invalid label "novalue": write it as key=value/],
      ];
      for (const [extra, want] of cases) {
        const r = await n.joinFails([...base, ...extra]);
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(want);
      }
      const plain = await n.joinFails(["ws://10.1.2.3:7399/ws", "--daemon-id", "w9"]);
      expect(plain.stderr).toStartWith("ERR refusing plain ws:// to 10.1.2.3");
      const nofp = await n.joinFails([`wss://127.0.0.1:${hub.port}`, "--token", "x.y"]);
      expect(nofp.stderr).toStartWith("ERR wss:// needs the hub's fingerprint");
    } finally {
      await n[Symbol.asyncDispose]();
    }
  });

  test("join-token --list shows tokens; bad options are refused", async () => {
    const list = await hub.pyctl(["join-token", "--list"]);
    expect(list.stdout).toMatch(/^ID +STATE +EXPIRES +USES +LABELS\n[0-9a-f]{8} +active +\S+ \S+Z +unlimited +role=web,zone=a\n/);
    expect((await hub.pyctl(["join-token", "--ttl", "soon"])).stderr).toStartWith("ERR --ttl takes a duration");
    expect((await hub.pyctl(["join-token", "--uses", "0"])).stderr).toStartWith("ERR --uses takes a whole number >= 1");
    expect((await hub.pyctl(["join-token", "--label", "a b=c"])).stderr).toStartWith("ERR invalid label key");
    expect((await hub.pyctl(["join-token", "--revoke", "nope"])).stderr).toStartWith("ERR no join token 'nope'");
  });

  test("tokens are stored hashed in the hub's private ~/.pythond/fleet", async () => {
    const t = await hub.joinToken();
    const text = await Bun.file(join(hub.d.e.home, ".pythond", "fleet", "tokens.json")).text();
    expect(text).toContain(t.token.split(".")[0]!);
    expect(text).not.toContain(t.token.split(".")[1]!);
  });
});
