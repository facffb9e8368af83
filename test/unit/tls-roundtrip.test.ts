// src/tls against Bun's real TLS stack: a Bun.serve listener with our generated certificate,
// clients (fetch, WebSocket) that pin it via tls.ca, and mTLS with the trusted_clients store.
// HOME points at a temporary directory; servers are stopped in finally blocks.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureOwnCertificate, generateCertificate, listTrustedClients, trustClient } from "../../src/tls/index.ts";

let oldHome: string | undefined;
let scratch: string;

beforeAll(() => {
  oldHome = process.env.HOME;
  scratch = mkdtempSync(join(tmpdir(), "pythond-tls-rt-"));
  process.env.HOME = scratch;
});

afterAll(() => {
  if (oldHome === undefined) delete process.env.HOME;
  else process.env.HOME = oldHome;
  rmSync(scratch, { recursive: true, force: true });
});

describe("TLS round trip with Bun", () => {
  /** A Bun.serve TLS listener on 127.0.0.1:0 that answers HTTP and echoes WebSocket messages. */
  function serve(tls: Record<string, unknown>) {
    return Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      tls,
      fetch(req, srv) {
        if (srv.upgrade(req)) return;
        return new Response("hello over tls");
      },
      websocket: {
        message(ws, msg) {
          ws.send(`echo ${msg}`);
        },
      },
    });
  }

  test("fetch and WebSocket succeed with tls.ca = our certificate, fail without it", async () => {
    const own = await ensureOwnCertificate();
    const server = serve({ cert: own.certPem, key: own.keyPem });
    try {
      const url = `https://127.0.0.1:${server.port}/`;
      let seen = "";
      const res = await fetch(url, {
        keepalive: false,
        tls: {
          ca: own.certPem,
          // Bun reports the same "AA:BB:…" form as fingerprintOfPem: pins can be compared directly.
          checkServerIdentity: (_host: string, cert: { fingerprint256: string }) => {
            seen = cert.fingerprint256;
            return undefined;
          },
        },
      } as RequestInit);
      expect(await res.text()).toBe("hello over tls");
      expect(seen).toBe(own.fingerprint);
      // Without the pin, Bun's default CA store rejects the self-signed leaf.
      await expect(fetch(url, { keepalive: false })).rejects.toMatchObject({ code: "UNABLE_TO_VERIFY_LEAF_SIGNATURE" });

      const ws = new WebSocket(`wss://127.0.0.1:${server.port}/`, { tls: { ca: own.certPem } } as never);
      const reply = await new Promise<string>((resolve, reject) => {
        ws.onopen = () => ws.send("ping");
        ws.onmessage = (e) => resolve(String(e.data));
        ws.onerror = () => reject(new Error("websocket error"));
      });
      ws.close();
      expect(reply).toBe("echo ping");
    } finally {
      server.stop(true);
    }
  });

  test("mTLS: only a trusted client certificate gets through", async () => {
    const own = await ensureOwnCertificate();
    const [good, bad] = await Promise.all([generateCertificate(), generateCertificate()]);
    const goodPath = join(scratch, "good-client.pem");
    writeFileSync(goodPath, good.certPem);
    trustClient(goodPath);
    const server = serve({
      cert: own.certPem,
      key: own.keyPem,
      ca: listTrustedClients(),
      requestCert: true,
      rejectUnauthorized: true,
    });
    try {
      const url = `https://127.0.0.1:${server.port}/`;
      const as = (client?: { certPem: string; keyPem: string }) =>
        fetch(url, {
          keepalive: false,
          tls: { ca: own.certPem, ...(client && { cert: client.certPem, key: client.keyPem }) },
        } as RequestInit);
      expect(await (await as(good)).text()).toBe("hello over tls");
      // Bun 1.4.5 reports these as ECONNRESET (untrusted certificate) and EPROTO (none sent).
      await expect(as(bad)).rejects.toThrow();
      await expect(as()).rejects.toThrow();
    } finally {
      server.stop(true);
    }
  });
});
