/**
 * Who may be a node: join tokens (wrong, expired, revoked, used up), the hub's certificate
 * (a wrong fingerprint is refused by the node, naming both), identity (an enrolled id cannot be
 * taken over with another key; `pyctl node forget` releases it), the one message a hub accepts
 * before authentication, and the seed's plain `ws://…/ws` spelling on loopback (the key proven by
 * signature there). Real hub and node processes, loopback only.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { until } from "./harness.ts";
import { accessLogWith, Hub, Node } from "./fleet-harness.ts";
import { generateCertificate, fingerprintOfPem } from "../../src/tls/index.ts";

let hub: Hub;
const nodes: Node[] = [];
const node = () => {
  const n = new Node();
  nodes.push(n);
  return n;
};
beforeAll(async () => {
  hub = await Hub.start();
});
afterAll(async () => {
  for (const n of nodes) await n[Symbol.asyncDispose]();
  await hub?.[Symbol.asyncDispose]();
});

const url = () => `wss://127.0.0.1:${hub.port}`;
const args = (token: string, id: string, fp = hub.l.fingerprint) => [url(), "--token", token, "--fingerprint", fp, "--id", id, "--heartbeat", "1"];

describe("join tokens", () => {
  test("an unknown token is refused with a clear error and logged", async () => {
    const r = await node().joinFails(args("0badc0de." + "0".repeat(64), "w-unknown"));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`ERR the hub at 127.0.0.1:${hub.port} refused node 'w-unknown': the hub does not know this join token`);
    await accessLogWith(hub.d, /event=auth .*status=error .*reason=token_unknown kind=node node=w-unknown/);
    expect((await hub.node("w-unknown"))).toBeUndefined();
  });

  test("a revoked token is refused", async () => {
    const t = await hub.joinToken();
    const id = t.stdout.match(/join token ([0-9a-f]{8})/)![1]!;
    expect((await hub.pyctl(["join-token", "--revoke", id])).stdout).toBe(`revoked join token ${id}\n`);
    const r = await node().joinFails(args(t.token, "w-revoked"));
    expect(r.stderr).toContain("the join token was revoked on the hub");
    expect((await hub.pyctl(["join-token", "--list"])).stdout).toMatch(new RegExp(`${id} +revoked`));
  });

  test("an expired token is refused", async () => {
    const t = await hub.joinToken(["--ttl", "1s"]);
    const id = t.stdout.match(/join token ([0-9a-f]{8})/)![1]!;
    await until(async () => new RegExp(`${id} +expired`).test((await hub.pyctl(["join-token", "--list"])).stdout), "the token to expire");
    const r = await node().joinFails(args(t.token, "w-expired"));
    expect(r.stderr).toContain("the join token has expired");
  });

  test("--uses 1: the first machine enrolls, a second one is refused", async () => {
    const t = await hub.joinToken(["--uses", "1"]);
    expect(t.stdout).toContain(", single use");
    const first = await node().join(args(t.token, "w-once"));
    expect(first.log.text).toContain("(enrolled now)");
    const r = await node().joinFails(args(t.token, "w-twice"));
    expect(r.stderr).toContain("the join token has been used as many times as it allows");
    await accessLogWith(hub.d, /reason=token_used_up kind=node node=w-twice/);
    // the enrolled node needs no token any more: its key is its credential
    await first.kill();
    const again = await new Node(first.e).join([url(), "--fingerprint", hub.l.fingerprint, "--heartbeat", "1"]);
    expect(again.log.text).toContain("joined: ");
    expect(again.log.text).not.toContain("enrolled now");
    nodes.push(again);
  });
});

describe("the hub's certificate", () => {
  test("a wrong fingerprint: the node refuses to join and names both fingerprints", async () => {
    const other = fingerprintOfPem((await generateCertificate()).certPem);
    const t = await hub.joinToken();
    const r = await node().joinFails(args(t.token, "w-fp", other));
    expect(r.code).toBe(1);
    expect(r.stderr).toBe( // checked before the daemon starts: nothing else is said
      `ERR hub certificate mismatch for 127.0.0.1:${hub.port}: it presents ${hub.l.fingerprint}, expected ${other} -- ` +
        "check the fingerprint with `pyctl cert` on the hub; do not join if they differ\n",
    );
  });

  test("--pin cert.pem works instead of --fingerprint", async () => {
    const t = await hub.joinToken();
    const n = await node().join([url(), "--token", t.token, "--pin", hub.l.certPath, "--id", "w-pinned", "--heartbeat", "1"]);
    expect(n.log.text).toContain("as node 'w-pinned'");
  });
});

describe("identity", () => {
  test("a known id with another key is refused and logged; the enrolled node stays online", async () => {
    const once = await hub.joinToken(["--uses", "1"]); // the owner cannot re-enroll by itself after forget
    const t = await hub.joinToken();
    const owner = await node().join(args(once.token, "worker-1"));
    const thief = node();
    const r = await thief.joinFails(args(t.token, "worker-1"));
    expect(r.code).toBe(1);
    const ownerFp = fingerprintOfPem(readFileSync(join(owner.e.home, ".pythond", "node", "cert.pem"), "utf8"));
    const thiefFp = fingerprintOfPem(readFileSync(join(thief.e.home, ".pythond", "node", "cert.pem"), "utf8"));
    expect(r.stderr).toContain(`node id 'worker-1' is already enrolled on this hub with another key (hub has ${ownerFp}, this node presents ${thiefFp})`);
    await accessLogWith(hub.d, /event=auth .*status=error .*reason=id_bound_to_other_key kind=node node=worker-1/);
    await hub.d.log.waitFor(/node 'worker-1': refused a link from 127\.0\.0\.1:\d+ with another key/);
    expect((await hub.node("worker-1"))?.state).toBe("online");
    expect((await hub.pysh(["new", "worker-1/s"])).code).toBe(0);
    expect(JSON.parse((await owner.pysh(["status", "s"])).stdout).state).toBe("idle"); // still the owner's

    // node forget: the id is free again (the old key is dropped, and refused from then on)
    expect((await hub.pyctl(["node", "forget", "worker-1"])).stdout).toBe("OK forgot node worker-1\n");
    const second = await node().join(args(t.token, "worker-1"));
    expect(second.log.text).toContain("(enrolled now)");
    await owner.log.waitFor(/hub link down: the hub at .* refused node 'worker-1': node id 'worker-1' is already enrolled on this hub with another key/);
    expect((await hub.pyctl(["node", "forget", "nope"])).stderr).toBe("ERR no node 'nope' is enrolled here\n");
  });

  test("before authentication the hub accepts one message: anything but a hello closes the link", async () => {
    const ws = new WebSocket(`wss://127.0.0.1:${hub.port}/`, {
      protocols: ["pythond-node.1"],
      tls: { ca: readFileSync(hub.l.certPath, "utf8"), checkServerIdentity: () => undefined },
    } as unknown as string[]);
    const got: string[] = [];
    const closed = new Promise<number>((resolve) => (ws.onclose = (ev) => resolve(ev.code)));
    ws.onmessage = (ev) => {
      got.push(String(ev.data));
      if (got.length === 1) ws.send("run work\nprint('sneaky')");
    };
    expect(await closed).toBe(1008);
    expect(JSON.parse(got[0]!)).toMatchObject({ t: "challenge", nonce: expect.any(String) });
    expect(JSON.parse(got[1]!)).toMatchObject({ t: "refused", reason: "bad_hello" });
    await accessLogWith(hub.d, /event=auth .*status=error .*reason=bad_hello kind=node/);
  });
});

describe("plain ws:// on loopback (the seed's spelling)", () => {
  test("--server-url ws://…/ws --daemon-id joins; the key is proven by signature", async () => {
    await using plain = await startPlainHub();
    const t = await plain.joinToken();
    expect(t.command[2]).toBe(`ws://127.0.0.1:${plain.port}`);
    expect(t.command).not.toContain("--fingerprint");
    const n = await node().join(["--server-url", `ws://127.0.0.1:${plain.port}/ws`, "--daemon-id", "seed-1", "--token", t.token, "--heartbeat", "1"]);
    expect(n.log.text).toContain("as node 'seed-1' (enrolled now)");
    await accessLogWith(plain.d, /event=auth .*status=ok .*method=proof kind=node node=seed-1/);
    expect((await plain.pysh(["new", "seed-1/w"])).code).toBe(0);
    expect((await plain.pysh(["run", "seed-1/w", "2 ** 10"])).stdout).toBe("1024\n");
  });
});

describe("a busy hub", () => {
  test("answers retry with a time to come back; the node waits that long and keeps trying", async () => {
    const { startListening } = await import("./remote-harness.ts");
    const { makeEnv } = await import("./harness.ts");
    const e = makeEnv();
    e.env.PYTHOND_NODE_MAX_PENDING = "0"; // every link is one too many: all are told to come back later
    const args = ["--listen", "127.0.0.1:0", "--tls", "--show-token", "--heartbeat", "1"];
    await using busy = new Hub(await startListening(args, e), args);
    const t = await busy.joinToken();
    const n = await node().join([`wss://127.0.0.1:${busy.port}`, "--token", t.token, "--fingerprint", busy.l.fingerprint, "--id", "w-busy"], { waitJoined: false });
    await n.log.waitFor(/hub link down: the hub at 127\.0\.0\.1:\d+ is busy; coming back in \d+\.\ds/);
    await accessLogWith(busy.d, /event=auth .*status=error .*reason=busy kind=node node=w-busy retry_after_ms=\d+/);
    expect(n.proc!.exitCode).toBeNull(); // not fatal: it keeps dialing
  });
});

async function startPlainHub(): Promise<Hub> {
  const { startListening } = await import("./remote-harness.ts");
  const args = ["--listen", "127.0.0.1:0", "--heartbeat", "1"];
  return new Hub(await startListening(args, undefined, "tcp"), args);
}
