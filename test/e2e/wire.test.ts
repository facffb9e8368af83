/** The wire protocol against raw WebSocket clients (REFERENCE "Wire protocol") and bad input. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { rawClient, startDaemon, until, type Daemon } from "./harness.ts";

let d: Daemon;
beforeAll(async () => {
  d = await startDaemon(["--max-frame", "1"]);
  await d.pysh(["new", "work"]);
});
afterAll(async () => {
  await d?.[Symbol.asyncDispose]();
});

describe("pythond.0.4 clients", () => {
  test("the subprotocol is accepted; run replies once", async () => {
    const c = await rawClient(d.e.sock, ["pythond.0.4"]);
    expect(c.protocol).toBe("pythond.0.4");
    expect(await c.ask("run work\nprint('hello')")).toBe("hello");
    expect(await c.ask("run work\nx = 42")).toBe("");
    expect(await c.ask("run work\nprint('a'); 1+1")).toBe("a\n2");
    expect(await c.ask("run work\n1/0")).toMatch(/^ERR execution failed\nTraceback[^]*ZeroDivisionError/);
    expect(await c.ask("run work\nimport sys; sys.exit(3)")).toBe("ERR execution failed\nexit(3)");
    c.close();
  });
  test("many commands share one connection, in order", async () => {
    const c = await rawClient(d.e.sock, ["pythond.0.4"]);
    c.send("run work\nv = 1");
    c.send("run work\nv + 1");
    c.send("ls");
    expect(await c.next()).toBe("");
    expect(await c.next()).toBe("2");
    expect(String(await c.next())).toMatch(/^ {2}work: alive pid=\d+/);
    c.close();
  });
  test("trailing CRLF, a leading pysh word, empty frames", async () => {
    const c = await rawClient(d.e.sock, ["pythond.0.4"]);
    c.send("");
    expect(await c.ask("pysh run work\n40 + 2\r\n")).toBe("42");
    expect(await c.ask("pysh ls\r\n")).toMatch(/work: alive/);
    c.close();
  });
  test("no subprotocol at all is served like the original", async () => {
    const c = await rawClient(d.e.sock, []);
    expect(await c.ask("run work\n'plain'")).toBe("plain");
    c.close();
  });
  test("fire replies with a cell id", async () => {
    const c = await rawClient(d.e.sock, ["pythond.0.4"]);
    expect(JSON.parse(await c.ask("fire work\n1"))).toEqual({ cell_id: expect.stringMatching(/^[0-9a-f]{12}$/), status: "fired" });
    c.close();
  });
});

describe("pythond.1 streaming", () => {
  test("CELL, binary output as produced, then OK", async () => {
    const c = await rawClient(d.e.sock, ["pythond.1", "pythond.0.4"]);
    expect(c.protocol).toBe("pythond.1");
    // The cell prints 'second' only after the test has received 'first': streaming, not timing.
    const flag = join(d.e.dir, "got-first");
    c.send(`run work\nimport os, time\nprint('first', flush=True)\nwhile not os.path.exists(${JSON.stringify(flag)}): time.sleep(0.005)\nprint('second')`);
    expect(String(await c.next())).toMatch(/^CELL [0-9a-f]{12}$/);
    const first = await c.next();
    expect(new TextDecoder().decode(first as ArrayBuffer)).toBe("first\n");
    writeFileSync(flag, "");
    let rest = "";
    for (;;) {
      const m = await c.next();
      if (typeof m === "string") {
        expect(m).toBe("OK");
        break;
      }
      rest += new TextDecoder().decode(m);
    }
    expect(rest).toBe("second\n");
    c.close();
  });
  test("a plain print (no flush) streams while the cell runs", async () => {
    const c = await rawClient(d.e.sock, ["pythond.1"]);
    const flag = join(d.e.dir, "got-plain");
    c.send(`run work\nimport os, time\nprint('early')\nwhile not os.path.exists(${JSON.stringify(flag)}): time.sleep(0.005)\n'late'`);
    expect(String(await c.next())).toMatch(/^CELL [0-9a-f]{12}$/);
    expect(new TextDecoder().decode((await c.next()) as ArrayBuffer)).toBe("early\n");
    writeFileSync(flag, "");
    expect(new TextDecoder().decode((await c.next()) as ArrayBuffer)).toBe("late\n");
    expect(await c.next()).toBe("OK");
    c.close();
  });
  test("pipelined runs on one connection are answered in order, and a command after them waits", async () => {
    await d.pysh(["new", "other"]);
    const c = await rawClient(d.e.sock, ["pythond.1"]);
    const flag = join(d.e.dir, "go-pipeline");
    c.send(`run work\nimport os, time\nseq = []\nwhile not os.path.exists(${JSON.stringify(flag)}): time.sleep(0.005)`);
    for (let i = 0; i < 20; i++) c.send(`run work\nseq.append(${i}); ${i}`);
    c.send("run other\n'other'");
    c.send("run work\nlen(seq)");
    // The 20 runs behind the blocked one are already with the worker; `other` and the last wait.
    await until(async () => JSON.parse((await d.pysh(["status", "work"])).stdout).queued === 20, "20 runs queued in the worker");
    writeFileSync(flag, "");
    const texts: string[] = [];
    let finals = 0;
    while (finals < 23) {
      const m = await c.next();
      if (typeof m !== "string") texts.push(new TextDecoder().decode(m).trimEnd());
      else if (m === "OK" || m.startsWith("ERR")) {
        expect(m).toBe("OK");
        finals++;
      }
    }
    expect(texts).toEqual([...Array.from({ length: 20 }, (_, i) => String(i)), "other", "20"]);
    c.close();
  });
  test("errors end with ERR execution failed", async () => {
    const c = await rawClient(d.e.sock, ["pythond.1"]);
    c.send("run work\nraise KeyError('k')");
    expect(String(await c.next())).toMatch(/^CELL /);
    expect(String(await c.next())).toMatch(/^ERR execution failed\nTraceback[^]*KeyError: 'k'$/);
    c.close();
  });
});

describe("bad input", () => {
  test("unknown command and missing arguments", async () => {
    const c = await rawClient(d.e.sock);
    expect(await c.ask("frobnicate work")).toBe("ERR unknown: frobnicate");
    expect(await c.ask("run")).toBe("ERR usage: run <name>\\n<code>");
    expect(await c.ask("complete")).toBe("ERR usage: complete <name> <text>");
    expect(await c.ask("new a b c")).toBe("ERR new takes a name only (got extra: b c)");
    expect(await c.ask("run Bad\n1")).toBe("ERR invalid session name (lowercase a-z, 0-9, _ and -, up to 80 characters)");
    expect(await c.ask("run work --timeout -3\n1")).toBe("ERR --timeout takes a number of seconds > 0 (got -3)");
    expect(await c.ask("toString")).toBe("ERR unknown: toString");
    expect(await c.ask("__proto__")).toBe("ERR unknown: __proto__");
    c.close();
  });
  test("binary frames in command mode get an error, the connection stays", async () => {
    const c = await rawClient(d.e.sock);
    c.send(new Uint8Array([1, 2, 3]));
    expect(await c.next()).toBe("ERR binary frames are only accepted while attached");
    expect(await c.ask("run work\n1")).toBe("1");
    c.close();
  });
  test("a frame over the limit closes that connection (1009); the daemon is fine", async () => {
    const c = await rawClient(d.e.sock);
    c.send("run work\n" + "#".repeat(2 * 1024 * 1024));
    const closed = await c.closed();
    expect(closed.code).toBe(1009);
    const r = await d.pysh(["run", "work", "'still here'"]);
    expect(r.stdout).toBe("still here\n");
  });
  test("pysh reports an oversize frame clearly", async () => {
    const r = await d.pysh(["run", "work", "-"], { stdin: "#".repeat(2 * 1024 * 1024) });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("ERR frame too large");
  });
  test("invalid UTF-8 in a text frame closes that connection; the daemon is fine", async () => {
    // Build a masked text frame by hand over a raw socket: WebSocket clients refuse to send one.
    const sock = await rawUpgrade(d.e.sock);
    const payload = new Uint8Array([0x72, 0x75, 0x6e, 0x20, 0xff, 0xfe]);
    const mask = [1, 2, 3, 4];
    const frame = new Uint8Array([0x81, 0x80 | payload.length, ...mask, ...payload.map((b, i) => b ^ mask[i % 4]!)]);
    sock.write(frame);
    const reply = await sock.nextData();
    expect(reply[0]! & 0x0f).toBe(0x8); // a close frame
    const code = (reply[2]! << 8) | reply[3]!;
    expect(code).toBe(1007);
    expect((await d.pysh(["run", "work", "2+2"])).stdout).toBe("4\n");
  });
});

/** Upgrades a raw Unix socket connection by hand and returns a tiny reader. */
async function rawUpgrade(path: string) {
  const chunks: Uint8Array[] = [];
  let wake: (() => void) | undefined;
  const s = await Bun.connect({
    unix: path,
    socket: {
      data(_s, data) {
        chunks.push(new Uint8Array(data));
        wake?.();
      },
    },
  });
  const nextData = async (): Promise<Uint8Array> => {
    while (chunks.length === 0) await new Promise<void>((r) => (wake = r));
    return chunks.shift()!;
  };
  s.write(
    "GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
  );
  const head = new TextDecoder().decode(await nextData());
  expect(head).toStartWith("HTTP/1.1 101");
  return { write: (b: Uint8Array) => s.write(b), nextData };
}
