/**
 * Reliability: an active client is not starved by 1,000 idle connections plus slow senders
 * (handshakes dribbled a byte at a time, frames dribbled in small pieces) and slow readers
 * (clients whose big output nobody reads, holding a cell back by flow control). The active
 * client's cells all answer, new connections are accepted promptly, and the idle connections are
 * still there afterwards.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { fdCount } from "../fixtures/proc.ts";
import { wsFrame } from "../fixtures/ws-raw.ts";
import { PYSH, startDaemon, until, type Daemon } from "./harness.ts";

let d: Daemon;
beforeAll(async () => {
  d = await startDaemon();
  for (const s of ["work", "flood"]) expect((await d.pysh(["new", s])).code).toBe(0);
  await d.pysh(["run", "work", "x = 41"]);
});
afterAll(async () => {
  await d?.[Symbol.asyncDispose]();
});

function openWs(protocols = ["pythond.0.4"]): Promise<WebSocket> {
  const ws = new WebSocket(`ws+unix://${d.e.sock}`, protocols);
  return new Promise((resolve, reject) => {
    ws.onopen = () => resolve(ws);
    ws.onerror = () => reject(new Error("connect failed"));
  });
}

/** `n` cells on one connection, one at a time; returns each latency (ms). */
async function activeCells(n: number): Promise<number[]> {
  const ws = await openWs();
  const lat: number[] = [];
  let wake: ((m: string) => void) | undefined;
  ws.onmessage = (ev) => wake?.(String(ev.data));
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    const reply = await new Promise<string>((resolve) => {
      wake = resolve;
      ws.send("run work\nx + 1");
    });
    lat.push(performance.now() - t);
    expect(reply).toBe("42");
  }
  ws.close();
  return lat;
}

const p = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil((q / 100) * xs.length) - 1)]!;

/** A raw connection that sends `bytes` a few at a time, on a timer, until stopped. */
async function dribbler(bytes: Uint8Array, step: number, everyMs: number) {
  let closed = false;
  const s = await Bun.connect({ unix: d.e.sock, socket: { data() {}, close: () => void (closed = true), error: () => void (closed = true) } });
  let off = 0;
  const t = setInterval(() => {
    if (closed || off >= bytes.length) return clearInterval(t);
    s.write(bytes.subarray(off, off + step));
    off += step;
  }, everyMs);
  return {
    stop() {
      clearInterval(t);
      s.end();
    },
  };
}

const HANDSHAKE = new TextEncoder().encode(
  "GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
);

test("1,000 idle connections, slow senders and slow readers do not starve an active client", async () => {
  const fds = fdCount(d.pid);
  const quiet = await activeCells(100);

  const idle: WebSocket[] = [];
  for (let i = 0; i < 10; i++) idle.push(...(await Promise.all(Array.from({ length: 100 }, () => openWs()))));
  let idleClosed = 0;
  for (const ws of idle) ws.onclose = () => idleClosed++;

  // 40 handshakes dribbled a byte every 20 ms; 40 upgraded connections dribbling a 256 KiB frame.
  const slow = [];
  for (let i = 0; i < 40; i++) slow.push(await dribbler(HANDSHAKE, 1, 20));
  const bigFrame = wsFrame(1, new TextEncoder().encode("run work\n#" + "x".repeat(256 * 1024)));
  const upgradedThenSlow = new Uint8Array(HANDSHAKE.length + bigFrame.length);
  upgradedThenSlow.set(HANDSHAKE);
  upgradedThenSlow.set(bigFrame, HANDSHAKE.length);
  for (let i = 0; i < 40; i++) slow.push(await dribbler(upgradedThenSlow, 512, 10));

  // Slow readers: their output is never read, so flow control holds the flood session's cell.
  const readers = Array.from({ length: 3 }, () =>
    Bun.spawn([PYSH, "run", "flood", "import sys\nfor i in range(10000): sys.stdout.write('z' * 65536)"], { env: d.e.env, stdout: "pipe", stderr: "pipe" }),
  );
  const inFlight = async () => {
    const st = JSON.parse((await d.pysh(["status", "flood"])).stdout) as { running: string[]; queued: number };
    return st.running.length + st.queued === 3;
  };
  await until(inFlight, "the slow readers' cells to be queued");

  const t0 = performance.now();
  const fresh = await openWs();
  const connectMs = performance.now() - t0;
  fresh.close();
  const busy = await activeCells(200);

  const detail = `quiet p50 ${p(quiet, 50).toFixed(2)} ms; busy p50 ${p(busy, 50).toFixed(2)} p99 ${p(busy, 99).toFixed(2)} max ${p(busy, 100).toFixed(2)} ms; connect ${connectMs.toFixed(1)} ms`;
  expect(busy.length, detail).toBe(200);
  expect(p(busy, 99), detail).toBeLessThan(500); // starvation would be seconds
  expect(connectMs, detail).toBeLessThan(1000);
  expect(idleClosed, "idle connections must not be dropped").toBe(0);

  for (const s of slow) s.stop();
  for (const r of readers) r.kill("SIGKILL");
  await Promise.all(readers.map((r) => r.exited));
  await d.pysh(["kill", "flood"]);
  for (const ws of idle) ws.close();
  await until(() => fdCount(d.pid) <= fds, `daemon fds back to ${fds} (now ${fdCount(d.pid)})`);
});
