/** Port forwarding (src/fleet/forward): real TCP sockets on loopback at both ends. */
import { afterAll, describe, expect, test } from "bun:test";
import { connect, createServer, type Server, type Socket } from "node:net";
import { duplexPair } from "../../src/fleet/duplex.ts";
import { listenForward, serveForward } from "../../src/fleet/forward/forward.ts";
import { parseForwardSpec } from "../../src/fleet/forward/spec.ts";
import type { PythondError } from "../../src/protocol/errors.ts";

const servers: Server[] = [];
afterAll(() => {
  for (const s of servers) s.close();
});

/** A target service: echo, or answer-after-EOF (reads the whole request, then replies and closes). */
async function target(kind: "echo" | "after-eof" | "sink"): Promise<number> {
  const server = createServer({ allowHalfOpen: true }, (s) => {
    if (kind === "echo") s.pipe(s);
    else if (kind === "sink") {
      let n = 0;
      s.on("data", (d) => (n += d.length));
      s.on("end", () => s.end(`got ${n}`));
    } else {
      const parts: Buffer[] = [];
      s.on("data", (d) => parts.push(d as Buffer));
      s.on("end", () => s.end(`reply to ${Buffer.concat(parts).toString()}`));
    }
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return (server.address() as { port: number }).port;
}

/** A forwarder wired through an in-memory link: node side served in-process. */
async function forwarder(host: string, port: number, errors: PythondError[] = [], window = 256 << 10) {
  let opened = 0;
  const fwd = await listenForward(
    parseForwardSpec(`0:${host}:${port}`),
    async () => {
      opened++;
      const [client, node] = duplexPair(window);
      void serveForward(node, host, port);
      return client;
    },
    { onError: (e) => errors.push(e) },
  );
  return { fwd, opened: () => opened };
}

function dial(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: "127.0.0.1", allowHalfOpen: true }, () => resolve(s));
    s.once("error", reject);
  });
}

function readAll(s: Socket): Promise<Buffer> {
  const parts: Buffer[] = [];
  return new Promise((resolve, reject) => {
    s.on("data", (d) => parts.push(d as Buffer));
    s.on("end", () => resolve(Buffer.concat(parts)));
    s.on("error", reject);
  });
}

describe("forward spec", () => {
  test("ssh -L spellings", () => {
    expect(parseForwardSpec("8888:localhost:8888")).toEqual({ bind: "127.0.0.1", localPort: 8888, host: "localhost", port: 8888 });
    expect(parseForwardSpec("0.0.0.0:5432:db.internal:5432")).toEqual({ bind: "0.0.0.0", localPort: 5432, host: "db.internal", port: 5432 });
    expect(parseForwardSpec("[::1]:8080:[fe80::1]:80")).toEqual({ bind: "::1", localPort: 8080, host: "fe80::1", port: 80 });
    expect(parseForwardSpec("*:1:h:2").bind).toBe("0.0.0.0");
    expect(() => parseForwardSpec("8888")).toThrow("forward spec is [BIND:]LOCAL_PORT:HOST:PORT");
    expect(() => parseForwardSpec("x:h:1")).toThrow("bad LOCAL_PORT 'x'");
    expect(() => parseForwardSpec("1:h:70000")).toThrow("bad PORT '70000'");
    expect(() => parseForwardSpec("1::2")).toThrow("empty HOST");
    expect(() => parseForwardSpec("[::1:1:h:2")).toThrow("unbalanced brackets");
  });
});

describe("forward", () => {
  test("binds 127.0.0.1 by default; bytes both ways; many connections at once", async () => {
    const port = await target("echo");
    const { fwd, opened } = await forwarder("127.0.0.1", port);
    expect(fwd.address.host).toBe("127.0.0.1");
    const payloads = Array.from({ length: 20 }, (_, i) => Buffer.from(crypto.getRandomValues(new Uint8Array(200_000 + i))));
    const results = await Promise.all(
      payloads.map(async (p) => {
        const s = await dial(fwd.address.port);
        const back = readAll(s);
        s.end(p);
        return back;
      }),
    );
    results.forEach((r, i) => expect(r.equals(payloads[i]!)).toBe(true));
    expect(opened()).toBe(20);
    await fwd.close();
  });

  test("a half-close travels: request, EOF, then the reply", async () => {
    const port = await target("after-eof");
    const { fwd } = await forwarder("localhost", port);
    const s = await dial(fwd.address.port);
    const back = readAll(s);
    s.end("ping");
    expect((await back).toString()).toBe("reply to ping");
    await fwd.close();
  });

  test("100 MB one way through a small window: all bytes, memory bounded", async () => {
    const port = await target("sink");
    const { fwd } = await forwarder("127.0.0.1", port, [], 64 << 10);
    const s = await dial(fwd.address.port);
    const back = readAll(s);
    const chunk = Buffer.alloc(1 << 20, 1);
    const rss0 = process.memoryUsage().rss;
    let peak = 0;
    for (let i = 0; i < 100; i++) {
      if (!s.write(chunk)) await new Promise((r) => s.once("drain", r));
      peak = Math.max(peak, process.memoryUsage().rss - rss0);
    }
    s.end();
    expect((await back).toString()).toBe(`got ${100 << 20}`);
    expect(peak).toBeLessThan(100 << 20);
    await fwd.close();
  }, 60_000);

  test("a refused target: the local connection closes and the error says why", async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
    const dead = (closed.address() as { port: number }).port;
    await new Promise((r) => closed.close(r));
    const errors: PythondError[] = [];
    const { fwd } = await forwarder("127.0.0.1", dead, errors);
    const s = await dial(fwd.address.port);
    const got = await readAll(s).catch(() => Buffer.alloc(0));
    expect(got.length).toBe(0);
    expect(errors.map((e) => [e.code, e.message])).toEqual([["connect_failed", `cannot connect to 127.0.0.1:${dead} from the node: connection refused`]]);
    await fwd.close();
  });

  test("an unknown host", async () => {
    const errors: PythondError[] = [];
    const { fwd } = await forwarder("no-such-host.invalid", 80, errors);
    await readAll(await dial(fwd.address.port)).catch(() => {});
    expect(errors[0]!.message).toMatch(/^cannot connect to no-such-host.invalid:80 from the node: unknown host/);
    await fwd.close();
  });

  test("the target resets mid-stream: the local connection is reset too, the listener lives on", async () => {
    const server = createServer((s) => s.once("data", () => s.resetAndDestroy()));
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as { port: number }).port;
    const { fwd } = await forwarder("127.0.0.1", port);
    const s = await dial(fwd.address.port);
    const ended = new Promise((r) => s.on("close", r));
    s.write("hello");
    await ended;
    expect(fwd.active()).toBe(0);
    const again = await dial(fwd.address.port); // the listener still accepts
    again.destroy();
    await fwd.close();
  });

  test("a local port in use is a clear error", async () => {
    const port = await target("echo");
    await expect(listenForward(parseForwardSpec(`${port}:h:1`), async () => duplexPair()[0])).rejects.toThrow(
      `cannot listen on 127.0.0.1:${port}: address already in use`,
    );
  });
});
