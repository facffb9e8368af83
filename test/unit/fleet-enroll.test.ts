// The fleet's enrollment pieces, in memory and in a private HOME: node ids and labels, join tokens
// (hashed, expiring, limited, revoked), bindings, the hub URL for join commands, the proof of a
// node's key on plain links.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkNodeId, parseHello, parseLabels } from "../../src/protocol/fleet.ts";
import { Bindings } from "../../src/fleet/hub/bindings.ts";
import { hubUrlFromEndpoints } from "../../src/fleet/hub/join-command.ts";
import { parseTtl, TokenStore } from "../../src/fleet/hub/tokens.ts";
import { parseHubUrl } from "../../src/fleet/node/hub-url.ts";
import { newNonce, signNonce, verifyProof } from "../../src/fleet/proof.ts";
import { generateCertificate } from "../../src/tls/index.ts";

let dir: string;
let oldHome: string | undefined;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "pyd-fleet-"));
  oldHome = process.env.HOME;
  process.env.HOME = dir;
});
afterAll(() => {
  process.env.HOME = oldHome;
  rmSync(dir, { recursive: true, force: true });
});

describe("names", () => {
  test("node ids: letters, digits, . _ -; spaces, slashes and control characters are refused with why", () => {
    for (const ok of ["worker-1", "a", "Web.01_x", "x".repeat(63)]) expect(checkNodeId(ok)).toBe(ok);
    const why = (id: string) => {
      try {
        checkNodeId(id);
        return "";
      } catch (e) {
        return (e as Error).message;
      }
    };
    expect(why("a b")).toContain("it has spaces");
    expect(why("a/b")).toContain("it has a slash");
    expect(why("a\x01b")).toContain("control characters");
    expect(why("")).toContain("empty");
    expect(why("-x")).toContain("starting with a letter or digit");
    expect(why("x".repeat(64))).toContain("longer than 63");
  });

  test("labels k=v; bad keys and values refused", () => {
    expect(parseLabels(["role=web", "zone=eu-1", "empty="])).toEqual({ role: "web", zone: "eu-1", empty: "" });
    expect(() => parseLabels(["role"])).toThrow("key=value");
    expect(() => parseLabels(["ro le=x"])).toThrow("spaces");
    expect(() => parseLabels(["role=a b"])).toThrow("spaces");
    expect(() => parseLabels(["role=a/b"])).toThrow("slash");
    expect(() => parseLabels(["role=a\tb"])).toThrow("control");
  });

  test("a hello from the wire is checked and its free text tamed", () => {
    const h = parseHello(JSON.stringify({ t: "hello", v: 1, id: "w1", labels: { ok: "1", "b ad": "x" }, hostname: "h\x1bost", os: "linux", arch: "x64", version: "0.5.0", heartbeat: 2 }));
    expect(h).toMatchObject({ id: "w1", labels: { ok: "1" }, hostname: "h?ost", heartbeat: 2 });
    expect(() => parseHello("nope")).toThrow("bad_hello");
    expect(() => parseHello(JSON.stringify({ t: "hello", v: 99, id: "w1" }))).toThrow("bad_version");
    expect(() => parseHello(JSON.stringify({ t: "hello", v: 1, id: "w/1" }))).toThrow("invalid_id");
    expect(() => parseHello(JSON.stringify({ t: "run", v: 1, id: "w1" }))).toThrow("bad_hello");
  });
});

describe("join tokens", () => {
  test("stored hashed in a private file; redeemed by the right token only", async () => {
    const store = new TokenStore();
    const { token, record } = await store.create({ ttlMs: parseTtl("1h"), uses: null, labels: { role: "web" } });
    expect(token).toMatch(/^[0-9a-f]{8}\.[0-9a-f]{64}$/);
    const text = readFileSync(store.path, "utf8");
    expect(text).not.toContain(token.split(".")[1]!);
    expect(statSync(store.path).mode & 0o777).toBe(0o600);
    expect(statSync(store.dir).mode & 0o777).toBe(0o700);
    expect(await store.redeem(token, true)).toMatchObject({ id: record.id, labels: { role: "web" } });
    expect(await store.redeem(token, true)).toMatchObject({ id: record.id }); // reusable
    expect(await store.redeem(`${record.id}.${"0".repeat(64)}`, true)).toBe("token_unknown");
    expect(await store.redeem("garbage", true)).toBe("token_unknown");
    expect(await store.redeem(undefined, true)).toBe("token_missing");
  });

  test("--uses 1 is single use; revoked and expired tokens say so", async () => {
    const store = new TokenStore();
    const once = await store.create({ ttlMs: 3600_000, uses: 1, labels: {} });
    expect(typeof (await store.redeem(once.token, false))).toBe("object"); // checking does not use it
    expect(typeof (await store.redeem(once.token, true))).toBe("object");
    expect(await store.redeem(once.token, true)).toBe("token_used_up");
    const r = await store.create({ ttlMs: 3600_000, uses: null, labels: {} });
    await store.revoke(r.record.id);
    expect(await store.redeem(r.token, true)).toBe("token_revoked");
    const short = await store.create({ ttlMs: 1, uses: null, labels: {} });
    await Bun.sleep(5);
    expect(await store.redeem(short.token, true)).toBe("token_expired");
    await expect(store.revoke("nope")).rejects.toThrow("no join token 'nope'");
  });

  test("ttl spellings", () => {
    expect(parseTtl("24h")).toBe(86400_000);
    expect(parseTtl("30m")).toBe(1800_000);
    expect(parseTtl("7d")).toBe(7 * 86400_000);
    expect(parseTtl("90")).toBe(90_000);
    expect(() => parseTtl("soon")).toThrow("--ttl");
    expect(() => parseTtl("0")).toThrow("--ttl");
  });
});

describe("bindings", () => {
  test("bound ids persist (one private file each) and can be forgotten", async () => {
    const b = new Bindings();
    const fp = "AB:".repeat(31) + "AB";
    b.bind({ id: "w1", fingerprint: fp, enrolled: new Date().toISOString(), token_id: "t", labels: {} });
    await b.flushed();
    expect(statSync(join(b.dir, "w1.json")).mode & 0o777).toBe(0o600);
    const again = new Bindings();
    expect(again.load()).toBe(1);
    expect(again.get("w1")?.fingerprint).toBe(fp);
    expect(again.forget("w1")).toBe(true);
    expect(new Bindings().load()).toBe(0);
  });
});

describe("urls", () => {
  test("hub URLs: wss by default, any path, plain ws only to loopback", () => {
    expect(parseHubUrl("wss://hub.example:7399")).toMatchObject({ tls: true, host: "hub.example", port: 7399, path: "/" });
    expect(parseHubUrl("ws://127.0.0.1:8765/ws")).toMatchObject({ tls: false, port: 8765, path: "/ws" });
    expect(parseHubUrl("hub:7399")).toMatchObject({ tls: true, host: "hub" });
    expect(() => parseHubUrl("ws://10.0.0.5:8765/ws")).toThrow("refusing plain ws:// to 10.0.0.5");
    expect(() => parseHubUrl("http://hub:1")).toThrow("wss://");
  });

  test("the join command's URL comes from the listener; a wildcard becomes the host name", () => {
    expect(hubUrlFromEndpoints(["tls://127.0.0.1:7399"])).toBe("wss://127.0.0.1:7399");
    expect(hubUrlFromEndpoints(["tcp://127.0.0.1:1", "tls://[::1]:2"])).toBe("wss://[::1]:2");
    expect(hubUrlFromEndpoints(["tls://0.0.0.0:7399"])).toMatch(/^wss:\/\/[^0].*:7399$/);
    expect(hubUrlFromEndpoints([])).toBeNull();
  });
});

describe("proof of the node's key (plain links)", () => {
  test("verifies for the signed nonce and id only, and only with the signer's certificate", async () => {
    const a = await generateCertificate({ commonName: "a" });
    const b = await generateCertificate({ commonName: "b" });
    const nonce = newNonce();
    const sig = await signNonce(a.keyPem, nonce, "w1");
    expect(await verifyProof(a.certPem, nonce, "w1", sig)).toBe(true);
    expect(await verifyProof(a.certPem, nonce, "w2", sig)).toBe(false);
    expect(await verifyProof(a.certPem, newNonce(), "w1", sig)).toBe(false);
    expect(await verifyProof(b.certPem, nonce, "w1", sig)).toBe(false);
    expect(await verifyProof("not a cert", nonce, "w1", sig)).toBe(false);
  });
});
