/**
 * The node simulator: one process holding many node links to a hub, speaking the real protocol
 * (src/fleet/node/dial.ts for TLS, the client certificate, challenge, hello, welcome; then the
 * multiplexer, answering heartbeats and requests as a node's dispatcher would, and redialing with
 * full-jitter backoff and the hub's retry-after, src/link/redial.ts). Several of these processes
 * together stand for thousands of machines (a process may hold at most ~19,000 descriptors here).
 *
 *   bun bench/fleet-sim.ts <hub-port> <hub-cert.pem> <key-dir> <id-prefix> <count> <token>
 *
 * key-dir holds cert.pem/key.pem shared by this process's nodes (one key per process: a hub binds
 * ids to keys, and 15,000 distinct keys would take minutes to make; the hub's work per link is the
 * same). A request `cmd` is answered with one text frame (the frame it got, reversed: proof it was
 * read) and the end; heartbeats with a session count of 0.
 *
 * Reports one JSON line per second on stdout: {up, welcomed, retries, refused, dialing}.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Mux } from "../src/link/mux.ts";
import { Redialer } from "../src/link/redial.ts";
import { dialHub, HubRefusal } from "../src/fleet/node/dial.ts";
import { parseHubUrl } from "../src/fleet/node/hub-url.ts";
import { fingerprintOfPem } from "../src/tls/pem.ts";
import { answerIoSimulated } from "./fleet-io-sim.ts";

const [portArg, hubCertPath, keyDir, prefix, countArg, token] = process.argv.slice(2);
const url = parseHubUrl(`wss://127.0.0.1:${portArg}`);
const hubPem = readFileSync(hubCertPath!, "utf8");
const key = { certPem: readFileSync(join(keyDir!, "cert.pem"), "utf8"), keyPem: readFileSync(join(keyDir!, "key.pem"), "utf8"), fingerprint: "" };
key.fingerprint = fingerprintOfPem(key.certPem);
const count = Number(countArg);
/**
 * Dials in flight at once in this process. A real node is one machine with one link; thousands of
 * them in one process would otherwise all wait on this process's own event loop and TLS work at
 * once, and time out in the hub's pre-auth stage (10 s) while nobody is busy.
 */
const CONCURRENCY = Number(process.env.SIM_CONCURRENCY || 64);
let inFlight = 0;
const queue: Array<() => void> = [];
async function slot(): Promise<() => void> {
  if (inFlight >= CONCURRENCY) await new Promise<void>((r) => queue.push(r));
  inFlight++;
  return () => {
    inFlight--;
    queue.shift()?.();
  };
}
const stats = { up: 0, welcomed: 0, retries: 0, refused: 0, dialing: 0, requests: 0 };
let hubInstance: string | undefined;

function simulate(i: number): void {
  const id = `${prefix}-${i}`;
  const r: Redialer = new Redialer(
    async () => {
      const release = await slot();
      stats.dialing++;
      try {
        const { channel, welcome } = await dialHub({ url, id, key, token, labels: { sim: "1" }, heartbeat: 10, fingerprint: fingerprintOfPem(hubPem), hubPem, hubInstance, timeoutMs: 30_000 });
        hubInstance = welcome.hub_instance;
        const mux = new Mux(channel, { onText: (t) => mux.close(t) });
        mux.onFrame = (h, body) => {
          if (h.op === "heartbeat") return mux.send({ op: "reply", rid: h.rid, ok: true, sessions: 0 });
          if (h.op === "io") return answerIoSimulated(mux, h); // node services: fleet-io-sim.ts
          if (h.op === "cmd" || h.op === "resume") {
            stats.requests++;
            const out = mux.serve(Number(h.rid), {});
            out.send("t", { seq: 1 }, Buffer.from(body).reverse().toString("utf8"));
            out.end({ seq: 2 });
          }
        };
        stats.up++;
        stats.welcomed++;
        mux.onClosed(() => stats.up--);
        return mux;
      } catch (e) {
        if (e instanceof HubRefusal) {
          if (e.answer.t === "retry") {
            stats.retries++;
            r.retryAfter(e.answer.after_ms);
          } else stats.refused++;
        }
        throw e;
      } finally {
        stats.dialing--;
        release();
      }
    },
    { baseMs: 500, capMs: 30_000 },
  );
  r.start();
}

for (let i = 0; i < count; i++) simulate(i);
setInterval(() => console.log(JSON.stringify(stats)), 1000);
