/**
 * The node's door to its services: the node link's dispatcher (src/fleet/node/serve.ts) hands
 * every `io` frame of the hub here. One NodeIo per node process: its jobs and shells belong to
 * the node, not to a link, so they outlive a dropped link and are found again on the next one.
 */
import type { WorkerHeader } from "../../link/frame.ts";
import type { Mux } from "../../link/mux.ts";
import type { IoSpec } from "../../protocol/fleet-io.ts";
import { servePipe } from "./mux-pipe.ts";
import { NodeIo } from "./serve.ts";
import { MIN_WINDOW, TunnelDuplex, WINDOW } from "./tunnel.ts";

/** The window the opener asked for, within bounds (default WINDOW). */
export function windowOf(spec: IoSpec | undefined): number {
  const w = Number(spec?.window);
  return Number.isFinite(w) && w > 0 ? Math.min(Math.max(w, MIN_WINDOW), WINDOW) : WINDOW;
}

let nodeIo: NodeIo | undefined;

export function serveIo(mux: Mux, h: WorkerHeader): void {
  nodeIo ??= new NodeIo();
  const spec = h.spec as IoSpec;
  void nodeIo.serve(spec, new TunnelDuplex(servePipe(mux, Number(h.rid)), windowOf(spec)));
}
