/**
 * Reliability: protocol fuzz (test/fixtures/fuzz.ts). 10,000 random, truncated, oversize and
 * invalid-UTF-8 frames (and other protocol violations) from several connections at once: every
 * frame is answered with a reply or a close, the daemon still serves, its connections are all
 * freed, and its memory levels off. bench/fuzz.ts runs the same with 100,000 frames.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { fuzz } from "../fixtures/fuzz.ts";
import { fdCount, fdKinds, rss } from "../fixtures/proc.ts";
import { startDaemon, until, type Daemon } from "./harness.ts";

const MAX_PAYLOAD = 1024 * 1024 + 4096; // --max-frame 1 (MiB), plus the daemon's room for the command line

let d: Daemon;
beforeAll(async () => {
  d = await startDaemon(["--max-frame", "1"]);
  expect((await d.pysh(["new", "work"])).code).toBe(0);
});
afterAll(async () => {
  await d?.[Symbol.asyncDispose]();
});

test("10,000 fuzzed frames: each answered by a reply or a close; the daemon serves on, bounded", async () => {
  const fds = fdCount(d.pid);
  const samples: number[] = [];
  const st = await fuzz({
    sock: d.e.sock,
    frames: 10_000,
    conns: 6,
    session: "work",
    maxPayload: MAX_PAYLOAD,
    onProgress(n) {
      if (n % 1000 === 0) samples.push(rss(d.pid));
    },
  });
  const context = `seed ${st.seed}: ${st.failures.join("; ")}`;
  expect(st.failures, context).toEqual([]);
  expect(st.replied + st.closed, context).toBe(st.sent);
  expect(st.sent).toBe(10_000);
  // Every kind of violation was exercised and was closed with the right code.
  for (const kind of ["invalid-utf8", "oversize", "truncated", "unmasked", "bad-opcode", "rsv-bits", "long-control", "garbage", "bad-handshake"]) {
    expect(st.byKind[kind] ?? 0, kind).toBeGreaterThan(50);
  }
  expect(st.closeCodes["1007"] ?? 0).toBeGreaterThan(0); // invalid UTF-8
  expect(st.closeCodes["1009"] ?? 0).toBeGreaterThan(0); // over the frame limit
  expect(st.closeCodes["1002"] ?? 0).toBeGreaterThan(0); // protocol errors
  // Still serving, on both subprotocols' paths.
  expect((await d.pysh(["run", "work", "6 * 7"])).stdout).toBe("42\n");
  expect((await d.pysh(["ls"])).stdout).toMatch(/^ {2}work: alive/);
  // Memory levels off: the second half of the run adds little to what the first half reached.
  const mid = Math.max(...samples.slice(0, 5));
  const end = Math.max(...samples.slice(5));
  expect((end - mid) / 2 ** 20, `RSS samples (MB): ${samples.map((s) => (s / 2 ** 20).toFixed(0)).join(" ")}`).toBeLessThan(16);
  // Every fuzz connection is gone from the daemon.
  await until(() => fdCount(d.pid) <= fds, `daemon fds back to ${fds} (now ${fdCount(d.pid)}: ${JSON.stringify(fdKinds(d.pid))})`);
});
