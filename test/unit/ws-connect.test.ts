/**
 * Our WebSocket client (src/link/ws-connect.ts, what a node dials its hub with) on real loopback
 * sockets: it speaks the protocol to a WebSocket server it did not write (Bun.serve: masked frames,
 * a 1 MiB message and text, both ways, exact), and each way a dial can go wrong is a clear error:
 * an HTTP answer other than 101, a wrong Sec-WebSocket-Accept, a subprotocol not chosen, a server
 * that never answers, a closed port, a TLS certificate the pin refuses.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { connectWebSocket, judgeAnswer, type WsConnectOptions } from "../../src/link/ws-connect.ts";
import { acceptKey } from "../../src/link/ws-socket.ts";
import { PythondError } from "../../src/protocol/errors.ts";
import { fingerprintOfPem, generateCertificate } from "../../src/tls/index.ts";

const stops: Array<() => void> = [];
afterEach(() => {
  for (const s of stops.splice(0)) s();
});

function opts(port: number, more: Partial<WsConnectOptions> = {}): WsConnectOptions {
  return { host: "127.0.0.1", port, path: "/x", protocol: "test.1", name: `the test server at 127.0.0.1:${port}`, timeoutMs: 5000, maxMessage: 4 << 20, ...more };
}

async function failure(o: WsConnectOptions): Promise<PythondError> {
  const e = await connectWebSocket(o).then(
    () => new Error("it connected"),
    (e: Error) => e,
  );
  if (!(e instanceof PythondError)) throw e;
  return e;
}

describe("our WebSocket client", () => {
  test("talks to Bun's own WebSocket server: a 1 MiB message and text each way, exact", async () => {
    const server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch(req, srv) {
        if (new URL(req.url).pathname !== "/x") return new Response("no", { status: 404 });
        return srv.upgrade(req, { headers: { "Sec-WebSocket-Protocol": "test.1" } }) ? undefined : new Response("no", { status: 400 });
      },
      websocket: {
        maxPayloadLength: 8 << 20,
        message(ws, m) {
          ws.send(typeof m === "string" ? m.toUpperCase() : Buffer.from(m).reverse());
        },
      },
    });
    stops.push(() => server.stop(true));
    const ch = await connectWebSocket(opts(server.port!));
    const got: Array<string | Uint8Array> = [];
    let wake = () => {};
    ch.onMessage((m) => {
      got.push(m);
      wake();
    });
    const big = crypto.getRandomValues(new Uint8Array(1 << 20));
    ch.send("hello é");
    ch.send(big);
    ch.sendParts(new Uint8Array([1, 2, 3]), big.subarray(0, 70_000));
    while (got.length < 3) await new Promise<void>((r) => (wake = r));
    expect(got[0]).toBe("HELLO É");
    expect(Buffer.from(got[1] as Uint8Array).equals(Buffer.from(big).reverse())).toBe(true);
    expect(Buffer.from(got[2] as Uint8Array).equals(Buffer.concat([Buffer.from([1, 2, 3]), big.subarray(0, 70_000)]).reverse())).toBe(true);
    const closed = new Promise<string>((r) => ch.onClose(r));
    ch.close("done here");
    expect(await closed).toBe("done here");
  });

  test("an HTTP answer that is not 101 is refused with its status line", async () => {
    const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("not here", { status: 404 }) });
    stops.push(() => server.stop(true));
    const e = await failure(opts(server.port!));
    expect(e.code).toBe("daemon_unreachable");
    expect(e.message).toBe(`the test server at 127.0.0.1:${server.port} refused the WebSocket upgrade: "HTTP/1.1 404 Not Found"`);
  });

  test("a wrong Sec-WebSocket-Accept or an unchosen subprotocol is refused", () => {
    const key = "dGhlIHNhbXBsZSBub25jZQ==";
    const good = `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptKey(key)}\r\nSec-WebSocket-Protocol: test.1`;
    expect(acceptKey(key)).toBe("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="); // RFC 6455's own example
    expect(judgeAnswer(good, key, "test.1")).toBeUndefined();
    expect(judgeAnswer(good.replace(acceptKey(key), "AAAA"), key, "test.1")).toBe("answered the WebSocket upgrade with a wrong Sec-WebSocket-Accept");
    expect(judgeAnswer(good, key, "other.1")).toBe("did not accept the WebSocket subprotocol other.1");
    expect(judgeAnswer(good.replace("Upgrade: websocket", "Upgrade: h2c"), key, "test.1")).toBe("answered 101 without Upgrade: websocket");
  });

  test("a server that accepts and never answers: a timeout, said; a closed port: refused", async () => {
    const silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    stops.push(() => silent.stop(true));
    const e = await failure(opts(silent.port, { timeoutMs: 300 }));
    expect(e.code).toBe("timeout");
    expect(e.message).toBe(`timed out after 0.3s connecting to the test server at 127.0.0.1:${silent.port}`);
    const gone = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const port = gone.port;
    gone.stop(true);
    const r = await failure(opts(port));
    expect(r.message).toBe(`connection refused by the test server at 127.0.0.1:${port}`);
  });

  test("TLS: the pin sees the certificate's fingerprint and its refusal is the error; nothing is sent first", async () => {
    const c = await generateCertificate({ commonName: "pinned" });
    let received = 0;
    const server = Bun.listen({ hostname: "127.0.0.1", port: 0, tls: { cert: c.certPem, key: c.keyPem }, socket: { data: (_s, d) => void (received += d.length) } });
    stops.push(() => server.stop(true));
    const seen: string[] = [];
    const e = await failure(
      opts(server.port, {
        tls: {
          checkPeer: (fp) => {
            seen.push(fp);
            return new PythondError("auth_failed", "not the pinned certificate");
          },
        },
      }),
    );
    expect(seen).toEqual([fingerprintOfPem(c.certPem)]);
    expect(e.code).toBe("auth_failed");
    expect(e.message).toBe("not the pinned certificate");
    expect(received).toBe(0); // the upgrade request (and anything after) never left
  });
});
