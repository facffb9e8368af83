/**
 * `pysh sh --all …` / `pysh sh -l role=web …`: the hub runs the command on every matching node
 * itself (one tunnel per node on that node's link, at most `--max-concurrency` at once) and sends
 * everything back on the one client connection, so a fan-out to thousands of nodes costs the
 * client one connection and the hub no descriptor per node beyond the links it already has.
 *
 * To the client, after `OK fanout`:
 *   text   {t:"nodes", nodes:[id…]}                  the matching nodes, in order (index = position)
 *   binary [u32 BE index][u8 fd][bytes]               output of node `index`, as it comes
 *   text   {t:"exit", node, exit, code, signal, timedOut, killed, durationMs}
 *   text   {t:"offline", node, since} / {t:"error", node, code, message} / {t:"skipped", node}
 *   text   OK / ERR …                                 the end
 * Output is acknowledged to a node only once the client connection has taken it, so a slow client
 * slows the nodes' commands rather than the hub's memory (at most a window per node in flight).
 * `--fail-fast`: after the first node that fails, no new node starts and running ones are ended.
 */
import type { ClientConn } from "../../daemon/conn.ts";
import type { Request } from "../../protocol/commands.ts";
import { PythondError } from "../../protocol/errors.ts";
import { parseLabels } from "../../protocol/fleet.ts";
import { errReply, okReply } from "../../protocol/replies.ts";
import type { FleetHub } from "../hub/hub.ts";
import { runSh } from "./client.ts";
import { parseSpec } from "./hub-io.ts";
import { openPipe } from "./mux-pipe.ts";
import { TunnelDuplex } from "./tunnel.ts";

export const FANOUT_OK = okReply("fanout");
export const DEFAULT_CONCURRENCY = 256;
/** What each node may have in flight towards the hub during a fan-out. */
const NODE_WINDOW = 256 << 10;
/** The client connection's backlog at which output stops being acknowledged to the nodes. */
const CLIENT_HIGH = 4 << 20;

/** `role=web,env=prod` → every node whose labels include all of these. */
export function parseSelector(s: string): Record<string, string> {
  return parseLabels(s.split(",").filter((p) => p !== ""));
}

export function matches(labels: Record<string, string>, sel: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(sel)) if (labels[k] !== v) return false;
  return true;
}

export async function hubFanout(fleet: FleetHub | undefined, conn: ClientConn, req: Request): Promise<"ok" | "error"> {
  if (!fleet) throw new PythondError("no_node", "this daemon is not a hub (start it with --listen HOST:PORT)");
  const spec = parseSpec(req.body);
  if (spec.kind !== "sh") throw new PythondError("usage", "fanout runs sh only");
  const all = req.opts.all === true;
  const selector = typeof req.opts.selector === "string" ? parseSelector(req.opts.selector) : undefined;
  if (all === (selector !== undefined)) throw new PythondError("usage", "fanout needs exactly one of --all and --selector k=v,…");
  const max = req.opts["max-concurrency"] === undefined ? DEFAULT_CONCURRENCY : Number(req.opts["max-concurrency"]);
  if (!Number.isInteger(max) || max < 1) throw new PythondError("usage", `--max-concurrency takes a whole number >= 1 (got ${String(req.opts["max-concurrency"])})`);
  const failFast = req.opts["fail-fast"] === true;

  const nodes = fleet.registry.list().filter((e) => all || matches(e.labels, selector!));
  if (nodes.length === 0) throw new PythondError("no_node", `no node matches ${all ? "--all" : `-l ${req.opts.selector}`} (see: pysh nodes)`);
  conn.reply.text(FANOUT_OK);
  conn.reply.text(JSON.stringify({ t: "nodes", nodes: nodes.map((e) => e.id) }));

  const room = () =>
    conn.reply.buffered() < CLIENT_HIGH || !conn.open ? Promise.resolve() : new Promise<void>((r) => conn.waitDrain(r));
  const send = (index: number, fd: 1 | 2, data: Uint8Array) => {
    const m = new Uint8Array(5 + data.length);
    new DataView(m.buffer).setUint32(0, index);
    m[4] = fd;
    m.set(data, 5);
    if (conn.open) conn.reply.binary(m);
    return room();
  };
  const say = (m: object) => {
    if (conn.open) conn.reply.text(JSON.stringify(m));
  };

  let failed = false;
  let stopping = false;
  const running = new Set<TunnelDuplex>();
  let next = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= nodes.length) return;
      const e = nodes[i]!;
      if (stopping) {
        say({ t: "skipped", node: e.id });
        continue;
      }
      const mux = fleet.port(e.id).mux;
      if (e.state !== "online" || !mux || mux.closed) {
        failed = true;
        say({ t: "offline", node: e.id, since: new Date(e.since).toISOString() });
        continue;
      }
      // a small window per node: the hub holds at most that much of each node's output
      const io = new TunnelDuplex(openPipe(mux, { ...spec, window: NODE_WINDOW }));
      running.add(io);
      try {
        const { result } = await runSh(io, { stdout: (b) => send(i, 1, b), stderr: (b) => send(i, 2, b) });
        say({ t: "exit", node: e.id, ...result });
        if (result.exit !== 0) failed = true;
      } catch (err) {
        failed = true;
        const pe = PythondError.from(err);
        say({ t: "error", node: e.id, code: pe.code, message: pe.message });
      } finally {
        running.delete(io);
      }
      if (failed && failFast && !stopping) {
        stopping = true;
        for (const r of running) void r.send(JSON.stringify({ t: "kill" })).catch(() => {});
      }
    }
  };
  conn.onClose(() => {
    // the client is gone: its commands run on, as a detached `sh` would (pysh job finds them)
    stopping = true;
    for (const r of running) r.close();
  });
  await Promise.all(Array.from({ length: Math.min(max, nodes.length) }, worker));
  if (conn.open) conn.reply.text(failed ? errReply(new PythondError("execution_failed", "some nodes failed"), conn.codes) : okReply());
  return failed ? "error" : "ok";
}
