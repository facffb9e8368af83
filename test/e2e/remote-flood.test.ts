/**
 * 1,000 bad-token attempts against a TLS listener, 50 at a time, from 127.0.0.1, while a good
 * client works from another address (::1, a second listener of the same daemon). Every attempt
 * is answered `ERR auth failed…` + 1008; past a few failures the source's answers are delayed and
 * then refused outright (auth.ts); the good client is never slowed; once the flood ends, a good
 * client from the flooding address works again. Loopback only, bounded.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { until } from "./harness.ts";
import { accessLogWith, ClientMachine, startListening, type Listening } from "./remote-harness.ts";

let srv: Listening;
let port6: number;
let good6: ClientMachine;
let good4: ClientMachine;
beforeAll(async () => {
  srv = await startListening(["--listen", "127.0.0.1:0", "--listen", "[::1]:0", "--tls", "--show-token"]);
  port6 = Number((await srv.d.log.waitFor(/listening on tls:\/\/\[::1\]:(\d+)/))[1]);
  good6 = new ClientMachine({ host: "[::1]", port: port6, token: srv.token });
  good4 = new ClientMachine({ port: srv.port, token: srv.token });
  for (const c of [good6, good4]) expect((await c.pyctl(["pin", srv.certPath])).code).toBe(0);
  expect((await good6.pysh(["new", "work"])).code).toBe(0);
  expect((await good6.pysh(["run", "work", "n = 0"])).code).toBe(0);
});
afterAll(async () => {
  good6?.[Symbol.dispose]();
  good4?.[Symbol.dispose]();
  await srv?.d[Symbol.asyncDispose]();
});

const BAD = "bad-token-for-the-flood-0123456789";

/** One bad attempt: the first text frame and the close code. */
function attempt(ca: string): Promise<{ text: string; code: number }> {
  return new Promise((resolve) => {
    let text = "";
    const ws = new WebSocket(`wss://127.0.0.1:${srv.port}/`, {
      headers: { Authorization: `Bearer ${BAD}` },
      protocols: ["pythond.1"],
      tls: { ca, checkServerIdentity: () => undefined },
    } as unknown as string[]);
    ws.onmessage = (ev) => (text ||= String(ev.data));
    ws.onclose = (ev) => resolve({ text, code: ev.code });
  });
}

test("1,000 bad-token attempts do not stop a good client", async () => {
  const ca = readFileSync(srv.certPath, "utf8");
  let remaining = 1000;
  const results: Array<{ text: string; code: number }> = [];
  const worker = async () => {
    while (remaining > 0) {
      remaining--;
      results.push(await attempt(ca));
    }
  };
  let flooding = true;
  const flood = Promise.all(Array.from({ length: 50 }, worker)).finally(() => (flooding = false));

  // Meanwhile, from another address, the good client keeps working.
  let goodRuns = 0;
  while (flooding || goodRuns < 3) {
    const r = await good6.pysh(["run", "work", "n += 1; n"]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe(`${++goodRuns}\n`);
  }
  await flood;

  expect(results.length).toBe(1000);
  const refused = results.filter((r) => r.text === "ERR auth failed: too many failed attempts from this address; retry later");
  const plain = results.filter((r) => r.text === "ERR auth failed");
  expect(refused.length + plain.length).toBe(1000); // every attempt got its answer
  expect(results.every((r) => r.code === 1008)).toBe(true);
  expect(refused.length).toBeGreaterThan(0); // the penalty kicked in

  const log = await accessLogWith(srv.d, /reason=too_many_failures/);
  expect(log).toMatch(/reason=bad_token .*delay_ms=\d+/); // failures were slowed down
  expect(log).toContain("reason=too_many_failures");
  expect(log).not.toContain(BAD);
  expect(log).not.toContain(srv.token);

  // From the flooding address itself, a good client gets in once the pending answers are out.
  await until(async () => (await good4.pysh(["run", "work", "n"])).code === 0, "the flooded address to work again");
});
