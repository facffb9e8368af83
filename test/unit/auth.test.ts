// Pre-auth logic of TCP/TLS clients, in memory: tokens, the per-source penalty (fake clock), mTLS
// decisions, the bridge's byte-level pieces, listen addresses and the client's endpoint rules.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decideTls, explainRejection, parseHostPort } from "../../src/client/remote.ts";
import {
  authorize,
  bearerToken,
  loadOrCreateTokenFile,
  newToken,
  Penalties,
  rejectionFrame,
  tokenMatches,
  TrustedClients,
} from "../../src/ingress/auth.ts";
import { headEnd, isWebSocketUpgrade, parseHead, rejectionBytes, rewriteHead } from "../../src/ingress/bridge.ts";
import { parseListen } from "../../src/ingress/remote-setup.ts";
import { generateCertificate, trustClient } from "../../src/tls/index.ts";

let dir: string;
let oldHome: string | undefined;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "pyd-auth-"));
  oldHome = process.env.HOME;
  process.env.HOME = dir;
});
afterAll(() => {
  process.env.HOME = oldHome;
  rmSync(dir, { recursive: true, force: true });
});

describe("token", () => {
  test("new tokens are 64 hex digits and differ", () => {
    const a = newToken();
    expect(a).toMatch(/^[0-9a-f]{64}$/);
    expect(newToken()).not.toBe(a);
  });
  test("constant-time match, any lengths, null", () => {
    expect(tokenMatches("abc123", "abc123")).toBe(true);
    expect(tokenMatches("abc123", "abc124")).toBe(false);
    expect(tokenMatches("abc123", "abc1234")).toBe(false);
    expect(tokenMatches("abc123", "")).toBe(false);
    expect(tokenMatches("abc123", null)).toBe(false);
  });
  test("Bearer header", () => {
    expect(bearerToken("Bearer xyz")).toBe("xyz");
    expect(bearerToken("bearer   xyz ")).toBe("xyz");
    expect(bearerToken("Basic xyz")).toBeNull();
    expect(bearerToken("Bearer")).toBeNull();
    expect(bearerToken(undefined)).toBeNull();
  });
  test("--token-file: created 0600, then reused", () => {
    const path = join(dir, "sub", "token");
    const a = loadOrCreateTokenFile(path);
    expect(a.created).toBe(true);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const b = loadOrCreateTokenFile(path);
    expect(b).toEqual({ token: a.token, created: false });
    expect(readFileSync(path, "utf8").trim()).toBe(a.token);
  });
  test("--token-file readable by others is refused, as ssh refuses such keys", () => {
    const path = join(dir, "loose");
    writeFileSync(path, "0123456789abcdef0123\n");
    chmodSync(path, 0o644);
    expect(() => loadOrCreateTokenFile(path)).toThrow(/readable by others \(mode 644\); run: chmod 600/);
    chmodSync(path, 0o600);
    expect(loadOrCreateTokenFile(path).token).toBe("0123456789abcdef0123");
  });
  test("--token-file with no usable token is refused", () => {
    const path = join(dir, "short");
    writeFileSync(path, "short\n", { mode: 0o600 });
    expect(() => loadOrCreateTokenFile(path)).toThrow(/16 to 512 printable/);
  });
});

describe("per-source penalty", () => {
  const clock = () => {
    let t = 1_000_000;
    return { now: () => t, advance: (ms: number) => (t += ms) };
  };

  test("free failures, then doubling delays, capped", () => {
    const c = clock();
    const p = new Penalties({ now: c.now, free: 3, baseDelayMs: 100, maxDelayMs: 800, maxPending: 100 });
    const delays: number[] = [];
    for (let i = 0; i < 8; i++) {
      const a = p.admit("10.0.0.1");
      expect(a.refused).toBe(false);
      delays.push((a as { failureDelayMs: number }).failureDelayMs);
      p.failed("10.0.0.1").done();
    }
    expect(delays).toEqual([0, 0, 0, 100, 200, 400, 800, 800]);
  });

  test("a source with the maximum pending is refused before its token is looked at", () => {
    const c = clock();
    const p = new Penalties({ now: c.now, maxPending: 2 });
    const one = p.failed("10.0.0.1");
    const two = p.failed("10.0.0.1");
    expect(p.admit("10.0.0.1").refused).toBe(true);
    expect(p.admit("10.0.0.2").refused).toBe(false); // another source is untouched
    one.done();
    one.done(); // idempotent
    expect(p.admit("10.0.0.1").refused).toBe(false);
    two.done();
  });

  test("failures decay with time", () => {
    const c = clock();
    const p = new Penalties({ now: c.now, free: 2, decayMs: 1000, baseDelayMs: 100 });
    for (let i = 0; i < 6; i++) p.failed("h").done();
    expect((p.admit("h") as { failureDelayMs: number }).failureDelayMs).toBeGreaterThan(0);
    c.advance(10_000);
    expect(p.admit("h")).toEqual({ refused: false, failureDelayMs: 0 });
    expect(p.peek("h").score).toBe(0);
  });

  test("sources: IPv4 as is, IPv6 by /64, v4-mapped as v4", () => {
    expect(Penalties.sourceOf("192.0.2.7")).toBe("192.0.2.7");
    expect(Penalties.sourceOf("::ffff:192.0.2.7")).toBe("192.0.2.7");
    expect(Penalties.sourceOf("2001:db8:1:2:aaaa::1")).toBe("2001:db8:1:2::/64");
    expect(Penalties.sourceOf("2001:db8:1:2:bbbb::9")).toBe("2001:db8:1:2::/64");
    expect(Penalties.sourceOf("::1")).toBe("0:0:0:0::/64");
  });

  test("memory is bounded: the least recently seen idle source is forgotten", () => {
    const c = clock();
    const p = new Penalties({ now: c.now, maxSources: 3, free: 0 });
    for (const s of ["a", "b", "c"]) p.failed(s).done();
    p.failed("d").done(); // forgets "a"
    expect(p.peek("a").score).toBe(0);
  });
});

describe("authorize", () => {
  const token = "t0ken-t0ken-t0ken";
  const ok = { authorization: `Bearer ${token}` };
  test("token only when no client is trusted (or not TLS)", () => {
    expect(authorize(token, new Set(), { tls: true, clientCert: null, ...ok })).toEqual({ ok: true, method: "token" });
    expect(authorize(token, new Set(["X"]), { tls: false, clientCert: null, ...ok })).toEqual({ ok: true, method: "token" });
    expect(authorize(token, new Set(), { tls: true, clientCert: null, authorization: "Bearer nope" })).toEqual({ ok: false, reason: "bad_token" });
    expect(authorize(token, new Set(), { tls: true, clientCert: null, authorization: undefined })).toEqual({ ok: false, reason: "no_token" });
  });
  test("once a client is trusted: a trusted certificate AND the token", () => {
    const trusted = new Set(["AA:BB"]);
    expect(authorize(token, trusted, { tls: true, clientCert: null, ...ok })).toEqual({ ok: false, reason: "client_cert_missing" });
    expect(authorize(token, trusted, { tls: true, clientCert: "CC:DD", ...ok })).toEqual({ ok: false, reason: "client_cert_untrusted" });
    expect(authorize(token, trusted, { tls: true, clientCert: "AA:BB", authorization: "Bearer x" })).toEqual({ ok: false, reason: "bad_token" });
    expect(authorize(token, trusted, { tls: true, clientCert: "AA:BB", ...ok })).toEqual({ ok: true, method: "token_mtls" });
  });
  test("rejection frames: the plain token failure is exactly the original's", () => {
    expect(rejectionFrame("bad_token")).toBe("ERR auth failed");
    expect(rejectionFrame("no_token")).toBe("ERR auth failed");
    expect(rejectionFrame("client_cert_missing")).toBe("ERR auth failed: client certificate required");
  });
  test("trusted clients are re-read when the directory changes", async () => {
    const t = new TrustedClients();
    expect(t.current().size).toBe(0);
    const c = await generateCertificate();
    const pem = join(dir, "client.pem");
    writeFileSync(pem, c.certPem);
    const fp = trustClient(pem);
    expect(t.current().has(fp)).toBe(true);
  });
});

describe("bridge bytes", () => {
  const head =
    "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
    "Sec-WebSocket-Protocol: pythond.0.4\r\nAuthorization: Bearer secret\r\nX-Pythond-Peer: 6.6.6.6:1\r\n\r\n";
  test("head end, parse, upgrade check", () => {
    const bytes = new TextEncoder().encode(head + "rest");
    expect(headEnd(bytes)).toBe(head.length);
    expect(headEnd(bytes.subarray(0, head.length - 1))).toBe(-1);
    const h = parseHead(head)!;
    expect(h.headers.get("authorization")).toBe("Bearer secret");
    expect(isWebSocketUpgrade(h)).toBe(true);
    expect(parseHead("NOT HTTP\r\n")).toBeNull();
    expect(isWebSocketUpgrade(parseHead("GET / HTTP/1.1\r\nHost: x\r\n")!)).toBe(false);
  });
  test("the replayed head has no token and no client-made bridge headers", () => {
    const out = rewriteHead(parseHead(head)!, { secret: "S", peer: "127.0.0.1:5", connId: 9, caller: "remote" });
    expect(out).not.toContain("secret");
    expect(out).not.toContain("6.6.6.6");
    expect(out).toContain("x-pythond-bridge: S\r\nx-pythond-peer: 127.0.0.1:5\r\nx-pythond-conn: 9\r\nx-pythond-caller: remote\r\n\r\n");
    expect(out).toStartWith("GET / HTTP/1.1\r\nHost: x\r\n");
  });
  test("rejection: RFC 6455 accept key, the offered subprotocol, text frame, close 1008", () => {
    const bytes = rejectionBytes(parseHead(head)!, "ERR auth failed", 1008, ["pythond.1", "pythond.0.4"]);
    const text = new TextDecoder().decode(bytes);
    expect(text).toStartWith("HTTP/1.1 101 Switching Protocols\r\n");
    expect(text).toContain("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"); // RFC 6455 1.3
    expect(text).toContain("Sec-WebSocket-Protocol: pythond.0.4\r\n");
    const frames = bytes.subarray(headEnd(bytes));
    expect(Array.from(frames.subarray(0, 2))).toEqual([0x81, 15]);
    expect(new TextDecoder().decode(frames.subarray(2, 17))).toBe("ERR auth failed");
    expect(Array.from(frames.subarray(17))).toEqual([0x88, 2, 0x03, 0xf0]);
  });
});

describe("addresses", () => {
  test("--listen: loopback may be plain, anything else is TLS", () => {
    expect(parseListen("127.0.0.1:0", false)).toEqual({ host: "127.0.0.1", port: 0, loopback: true, tls: false });
    expect(parseListen("localhost:7399", false)).toMatchObject({ host: "127.0.0.1", tls: false });
    expect(parseListen("[::1]:7399", false)).toEqual({ host: "::1", port: 7399, loopback: true, tls: false });
    expect(parseListen("127.0.0.1:0", true).tls).toBe(true);
    expect(parseListen("0.0.0.0:7399", false)).toMatchObject({ loopback: false, tls: true });
    expect(parseListen("10.0.0.5", false)).toMatchObject({ port: 7984, tls: true });
    expect(parseListen(":7399", false)).toMatchObject({ host: "0.0.0.0", tls: true });
    expect(() => parseListen("1.2.3.4:99999", false)).toThrow(/HOST:PORT/);
    expect(() => parseListen("a b:1", false)).toThrow();
  });
  test("client endpoints: TLS implied off loopback; clear text to a network refused", () => {
    expect(parseHostPort("[::1]:5")).toEqual({ host: "::1", port: 5 });
    expect(parseHostPort("h:7")).toEqual({ host: "h", port: 7 });
    expect(decideTls("127.0.0.1", undefined)).toBe(false);
    expect(decideTls("127.0.0.1", "1")).toBe(true);
    expect(decideTls("10.0.0.5", undefined)).toBe(true);
    expect(() => decideTls("10.0.0.5", "0")).toThrow(/clear text/);
  });
  test("rejections explained for people, other replies untouched", () => {
    const ep = { host: "127.0.0.1", port: 9, tls: true, token: "t" };
    expect(explainRejection(ep, null, "ERR auth failed")).toStartWith("ERR auth failed: 127.0.0.1:9 rejected the token");
    expect(explainRejection(ep, null, "ERR auth failed: client certificate required")).toContain("pyctl trust <cert.pem>");
    expect(explainRejection(ep, "AA:BB", "ERR auth failed: client certificate not trusted")).toContain("AA:BB");
    expect(explainRejection(ep, null, "OK")).toBe("OK");
  });
});
