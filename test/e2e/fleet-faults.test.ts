/**
 * Faults, made for real: a node SIGKILLed and restarted (its sessions survive, as a daemon's do),
 * the hub SIGKILLed and restarted (nodes come back by themselves, their sessions intact), and a
 * link cut silently by a relay that stops forwarding without closing anything: the hub marks the
 * node offline within 3 heartbeats, the node redials when the relay heals, and a cell that was
 * streaming to a hub client runs on, once, and its output reaches that client. A node killed while
 * it writes a put leaves a part file that is a prefix of the source, and the next put resumes.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { alive, LineWatcher, PYSH, until } from "./harness.ts";
import { accessLogWith, blocksFile, Hub, joinNode, Node, Relay } from "./fleet-harness.ts";

let hub: Hub;
const nodes: Node[] = [];
beforeAll(async () => {
  hub = await Hub.start();
});
afterAll(async () => {
  for (const n of nodes) await n[Symbol.asyncDispose]();
  await hub?.[Symbol.asyncDispose]();
});

const state = async (id: string) => (await hub.node(id))?.state;

describe("a node killed and restarted", () => {
  test("its sessions survive; it comes back online with `pythond join` alone", async () => {
    const n = await joinNode(hub, "w-kill");
    nodes.push(n);
    expect((await hub.pysh(["new", "w-kill/s"])).code).toBe(0);
    expect((await hub.pysh(["run", "w-kill/s", "import os; kept = 'still here'; os.getpid()"])).code).toBe(0);
    const [pid] = n.workerPids();
    await n.kill("SIGKILL");
    await until(async () => (await state("w-kill")) === "offline", "the hub to see the node go");
    await accessLogWith(hub.d, /event=node .*status=error .*node=w-kill event_detail=offline/);
    expect((await hub.pysh(["run", "w-kill/s", "1"])).stderr).toStartWith("ERR node 'w-kill' is offline (since ");
    expect(alive(pid!)).toBe(true);
    const back = await new Node(n.e).join([]); // ~/.pythond/node keeps the hub, its fingerprint and the id
    nodes.push(back);
    expect(back.log.text).toContain(`session s: adopted worker pid ${pid}`);
    await until(async () => (await state("w-kill")) === "online", "the node to be back");
    expect((await hub.pysh(["run", "w-kill/s", "kept"])).stdout).toBe("still here\n");
  });
});

describe("a node killed while it receives a put", () => {
  test("the part file it leaves is a prefix of the source; the next put resumes from it, exact", async () => {
    const n = await joinNode(hub, "w-recv");
    nodes.push(n);
    const src = await blocksFile(join(hub.d.e.dir, "recv.bin"), 200);
    const p = Bun.spawn([PYSH, "put", "w-recv", src, "recv.bin"], { env: hub.d.e.env, stdout: "ignore", stderr: "pipe" });
    const part = () => readdirSync(n.e.home).find((x) => x.startsWith(".recv.bin.") && x.endsWith(".pysh-part"));
    while (!(part() && statSync(join(n.e.home, part()!)).size > 20_000_000)) await Bun.sleep(10);
    await n.kill("SIGKILL"); // chunks were being written one after another, several received ahead
    expect(await p.exited).not.toBe(0);
    const kept = readFileSync(join(n.e.home, part()!));
    expect(kept.length).toBeGreaterThan(20_000_000);
    expect(kept.equals(readFileSync(src).subarray(0, kept.length))).toBe(true); // no hole: a prefix
    const back = await new Node(n.e).join([]);
    nodes.push(back);
    await until(async () => (await state("w-recv")) === "online", "the node to be back");
    const again = Bun.spawn([PYSH, "put", "w-recv", src, "recv.bin"], { env: hub.d.e.env, stdout: "ignore", stderr: "pipe" });
    const [code, err] = await Promise.all([again.exited, new Response(again.stderr).text()]);
    expect({ code, err }).toEqual({ code: 0, err: expect.stringMatching(/^pysh: resumed: \S+ \S+ were already on 'w-recv'/) });
    expect(readFileSync(join(n.e.home, "recv.bin")).equals(readFileSync(src))).toBe(true);
  });
});

describe("pyctl restart on a node", () => {
  test("in place (same pid), still a node, sessions adopted; the token travels by the environment, not argv", async () => {
    const t = await hub.joinToken(["--uses", "1"]);
    const n = new Node();
    nodes.push(n);
    // the token from the environment, as a service's EnvironmentFile gives it
    n.e.env.PYTHOND_JOIN_TOKEN = t.token;
    await n.join([`wss://127.0.0.1:${hub.port}`, "--fingerprint", t.fingerprint, "--id", "w-re", "--heartbeat", "1"]);
    delete n.e.env.PYTHOND_JOIN_TOKEN;
    expect(n.log.text).toContain("as node 'w-re' (enrolled now)");
    expect((await n.pysh(["new", "s"])).code).toBe(0);
    expect((await hub.pysh(["run", "w-re/s", "import os; k = 5; print(os.environ.get('PYTHOND_JOIN_TOKEN'))"])).stdout).toBe("None\n");
    const [wpid] = n.workerPids();
    const r = await n.pyctl(["restart"]);
    expect(r.stdout + r.stderr).toContain("restarting daemon");
    await n.log.waitFor(/restarting \(sessions keep running\)/);
    await n.log.waitFor(new RegExp(`session s: adopted worker pid ${wpid}`));
    // the same process, a node again: back on the hub with its key (the single-use token is spent)
    await until(async () => (await state("w-re")) === "online" && n.log.text.split("joined: ").length > 2, "the node to rejoin after its restart");
    expect(n.proc!.exitCode).toBeNull();
    const cmdline = readFileSync(`/proc/${n.pid}/cmdline`, "utf8").split("\0");
    expect(cmdline).toContain("join");
    expect(cmdline.join(" ")).not.toContain(t.token);
    expect((await hub.pysh(["run", "w-re/s", "k + 1"])).stdout).toBe("6\n");
  });
});

describe("the hub killed and restarted", () => {
  test("nodes come back by themselves; their sessions are intact", async () => {
    const n = await joinNode(hub, "w-stay");
    nodes.push(n);
    expect((await hub.pysh(["new", "w-stay/s"])).code).toBe(0);
    expect((await hub.pysh(["run", "w-stay/s", "v = 12"])).code).toBe(0);
    hub.d.proc.kill("SIGKILL");
    await hub.d.proc.exited;
    await n.log.waitFor(/hub link down: /);
    hub = await hub.restart();
    await n.log.waitFor(/hub link back: /);
    await until(async () => (await state("w-stay")) === "online", "the node to be online on the new hub");
    expect((await hub.pysh(["run", "w-stay/s", "v + 1"])).stdout).toBe("13\n");
    expect((await hub.pysh(["nodes"])).stdout).toMatch(/^w-kill +(online|offline)/m); // enrolled nodes are remembered
  });
});

describe("a link cut silently", () => {
  test("offline within 3 heartbeats; back when the relay heals; the streaming cell's output arrives", async () => {
    const relay = await Relay.start(hub.port);
    try {
      const n = await joinNode(hub, "w-cut", [], relay.port);
      nodes.push(n);
      const gate = join(n.e.dir, "gate");
      expect((await hub.pysh(["new", "w-cut/s"])).code).toBe(0);
      expect((await hub.pysh(["run", "w-cut/s", "runs = 0"])).code).toBe(0);
      const code = [
        "import os, time",
        "runs += 1",
        "print('before the cut', flush=True)",
        `while not os.path.exists(${JSON.stringify(gate)}): time.sleep(0.05)`,
        "print('x' * 100_000)",
        "print('after the cut')",
      ].join("\n");
      const client = Bun.spawn([PYSH, "run", "w-cut/s", code], { env: hub.d.e.env, stdout: "pipe", stderr: "pipe" });
      const out = new LineWatcher(client.stdout as ReadableStream<Uint8Array>);
      await out.waitFor(/before the cut/); // (a trailing newline is held back until more output comes)

      relay.stall();
      await until(async () => (await state("w-cut")) === "offline", "the hub to mark the node offline");
      await accessLogWith(hub.d, /event=node .*node=w-cut event_detail=offline:%20.*no%20answer%20to%203%20heartbeats/);
      await n.log.waitFor(/hub link down: no heartbeat from the hub for 3s/);
      writeFileSync(gate, ""); // the cell goes on while its node is unreachable, and ends
      await until(async () => JSON.parse((await n.pysh(["status", "s"])).stdout).state === "idle", "the cell to end on the node");
      expect(existsSync(gate)).toBe(true);

      relay.heal();
      await until(async () => (await state("w-cut")) === "online", "the node to dial back");
      expect(await client.exited).toBe(0);
      await out.waitFor(/after the cut\n$/);
      expect(out.text).toBe(`before the cut\n${"x".repeat(100_000)}\nafter the cut\n`);
      expect((await hub.pysh(["run", "w-cut/s", "runs"])).stdout).toBe("1\n"); // resumed, not run again
    } finally {
      relay.stop();
    }
  });
});
