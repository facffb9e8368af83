/**
 * What a simulated node (bench/fleet-sim.ts) answers to a node-service tunnel: `sh` answered at
 * once as a command that exited 0 (started, then exit), through the real tunnel and credits
 * (src/fleet/io/), without spawning anything, so a fan-out to thousands of simulated nodes
 * measures the hub and the link, not this machine's fork rate. Anything else: a clear error.
 */
import type { WorkerHeader } from "../src/link/frame.ts";
import type { Mux } from "../src/link/mux.ts";
import { servePipe } from "../src/fleet/io/mux-pipe.ts";
import { TunnelDuplex } from "../src/fleet/io/tunnel.ts";
import type { IoSpec } from "../src/protocol/fleet-io.ts";

export function answerIoSimulated(mux: Mux, h: WorkerHeader): void {
  const io = new TunnelDuplex(servePipe(mux, Number(h.rid)));
  const spec = h.spec as IoSpec;
  void (async () => {
    if (spec?.kind !== "sh") {
      await io.send(JSON.stringify({ t: "err", code: "unknown_command", message: "the node simulator answers sh only" }));
    } else {
      await io.send(JSON.stringify({ t: "started", id: String(h.rid), pid: 0, created: true }));
      await io.send(JSON.stringify({ t: "exit", id: String(h.rid), exit: 0, code: 0, signal: null, timedOut: false, killed: false, durationMs: 0 }));
    }
    io.close();
  })().catch(() => io.close());
}
