/**
 * The hub's view of its nodes: every enrolled id (from the bindings) and, for those that dialed
 * in, what they said about themselves and how their link is doing. `pysh nodes` and `pysh ls`
 * read it; node targets (`worker-1/work`) look their node up here.
 */
import { PythondError } from "../../protocol/errors.ts";
import { formatLabels, type NodeHello } from "../../protocol/fleet.ts";
import type { Bindings } from "./bindings.ts";

export interface NodeLinkLike {
  close(code: number, reason: string): void;
}

export interface NodeEntry {
  id: string;
  state: "online" | "offline";
  /** When the state began (ms since the epoch); for offline nodes never seen by this hub run: its start. */
  since: number;
  address: string;
  hostname: string;
  os: string;
  arch: string;
  version: string;
  labels: Record<string, string>;
  sessions: number | null;
  lastHeartbeat: number | null;
  rttMs: number | null;
  connId?: number;
  link?: NodeLinkLike;
}

export class NodeRegistry {
  private nodes = new Map<string, NodeEntry>();
  private readonly started = Date.now();

  constructor(private readonly bindings: Bindings) {}

  /** The entry of an enrolled node (created offline when this hub has not seen it yet). */
  entry(id: string): NodeEntry | undefined {
    let e = this.nodes.get(id);
    if (!e) {
      const b = this.bindings.get(id);
      if (!b) return undefined;
      e = { id, state: "offline", since: this.started, address: "", hostname: "", os: "", arch: "", version: "", labels: { ...b.labels }, sessions: null, lastHeartbeat: null, rttMs: null };
      this.nodes.set(id, e);
    }
    return e;
  }

  /** Node `id`, or `ERR no node 'x' -- nodes: a, b`. */
  get(id: string): NodeEntry {
    const e = this.entry(id);
    if (e) return e;
    const ids = this.ids();
    const shown = ids.slice(0, 20).join(", ") + (ids.length > 20 ? `, … (${ids.length} in all: pysh nodes)` : "");
    throw new PythondError("no_node", `no node '${id}' -- ${ids.length ? `nodes: ${shown}` : "no node has joined this hub (pyctl join-token)"}`);
  }

  has(id: string): boolean {
    return this.nodes.has(id) || this.bindings.get(id) !== undefined;
  }

  ids(): string[] {
    const all = new Set([...this.bindings.ids(), ...this.nodes.keys()]);
    return [...all].filter((id) => this.bindings.get(id) !== undefined).sort();
  }

  list(): NodeEntry[] {
    return this.ids().map((id) => this.entry(id)!);
  }

  online(e: NodeEntry, hello: NodeHello, address: string, connId: number, link: NodeLinkLike, tokenLabels: Record<string, string>): void {
    const old = e.link;
    e.link = link;
    e.connId = connId;
    e.state = "online";
    e.since = Date.now();
    e.address = address;
    e.hostname = hello.hostname;
    e.os = hello.os;
    e.arch = hello.arch;
    e.version = hello.version;
    e.labels = { ...hello.labels, ...tokenLabels };
    e.lastHeartbeat = null;
    e.rttMs = null;
    if (old && old !== link) old.close(4000, "replaced by a newer link of the same node");
  }

  /** The link `link` of node `e` went away (no-op when a newer link already replaced it). */
  offline(e: NodeEntry, link: NodeLinkLike): boolean {
    if (e.link !== link) return false;
    e.link = undefined;
    e.state = "offline";
    e.since = Date.now();
    return true;
  }

  forget(id: string): NodeEntry | undefined {
    const e = this.nodes.get(id);
    this.nodes.delete(id);
    return e;
  }

  get onlineCount(): number {
    let n = 0;
    for (const e of this.nodes.values()) if (e.state === "online") n++;
    return n;
  }

  /** `pysh nodes --json` */
  json(): unknown[] {
    return this.list().map((e) => ({
      id: e.id,
      state: e.state,
      since: new Date(e.since).toISOString(),
      address: e.address,
      hostname: e.hostname,
      os: e.os,
      arch: e.arch,
      version: e.version,
      labels: e.labels,
      sessions: e.sessions,
      last_heartbeat: e.lastHeartbeat === null ? null : new Date(e.lastHeartbeat).toISOString(),
      rtt_ms: e.rttMs,
    }));
  }

  /** `pysh nodes`: a table. */
  table(now = Date.now()): string {
    const rows = this.list().map((e) => [
      e.id,
      e.state === "online" ? "online" : `offline since ${ago(e.since, now)}`,
      e.address || "-",
      e.hostname || "-",
      e.os ? `${e.os}/${e.arch}` : "-",
      e.version || "-",
      formatLabels(e.labels) || "-",
      e.sessions === null ? "-" : String(e.sessions),
      e.lastHeartbeat === null ? "-" : `${ago(e.lastHeartbeat, now)} ago`,
      e.rttMs === null ? "-" : `${e.rttMs.toFixed(1)}ms`,
    ]);
    if (rows.length === 0) return "(no nodes; make a join token with: pyctl join-token)";
    const head = ["ID", "STATE", "ADDRESS", "HOST", "OS/ARCH", "VERSION", "LABELS", "SESSIONS", "HEARTBEAT", "RTT"];
    const all = [head, ...rows];
    const widths = head.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
    return all.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ")).join("\n");
  }

  /** `pysh ls`: one line per node. */
  lsLines(now = Date.now()): string[] {
    return this.list().map((e) => {
      if (e.state !== "online") return `  ${e.id}: node offline since ${ago(e.since, now)}`;
      const sessions = e.sessions === null ? "" : ` ${e.sessions} session${e.sessions === 1 ? "" : "s"}`;
      return `  ${e.id}: node online ${e.address} ${e.os}/${e.arch}${sessions}`;
    });
  }
}

/** "5s", "3m", "2h", "4d" since `t`. */
function ago(t: number, now: number): string {
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}
