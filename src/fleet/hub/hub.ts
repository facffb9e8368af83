/**
 * The hub: an ordinary daemon whose listener also takes node links. This object holds what the
 * fleet adds to the daemon: join tokens, bindings (id -> key), the node registry, the admission
 * of new links, and each online node's link. The listener hands it sockets (admit.ts); the router
 * asks it for node targets (`worker-1/work`), `nodes` and the `ls` lines.
 */
import type { Penalties } from "../../ingress/auth.ts";
import type { AccessLog } from "../../daemon/access-log.ts";
import { formatLabels, type HubAnswer, type NodeHello } from "../../protocol/fleet.ts";
import { Bindings } from "./bindings.ts";
import { Admission, adoptNodeSocket, type AdoptedSocket, type NodeSocketInfo } from "./admit.ts";
import type { Socket } from "bun";
import { NodeRegistry, type NodeEntry } from "./registry.ts";
import { TokenStore } from "./tokens.ts";
import type { RawWsChannel } from "./ws-server.ts";
import { BeatWheel, HubLink } from "./link.ts";
import { NodePort } from "./port.ts";
import { NodeTarget, type AttachStream } from "./target.ts";
import type { ClientConn } from "../../daemon/conn.ts";
import { checkName } from "../../protocol/names.ts";
import { PythondError } from "../../protocol/errors.ts";

export interface FleetHubOptions {
  log: AccessLog;
  say(msg: string): void;
  penalties: Penalties;
  /** Seconds between heartbeats to each node (default 10); a node is offline after 3 missed. */
  heartbeat?: number;
}

export class FleetHub {
  readonly bindings = new Bindings();
  readonly tokens = new TokenStore();
  readonly registry: NodeRegistry;
  readonly admission = new Admission();
  /** Changes at every start: nodes keep resume state only for the hub instance they saw. */
  readonly instance = Buffer.from(crypto.getRandomValues(new Uint8Array(8))).toString("hex");
  readonly heartbeat: number;
  readonly penalties: Penalties;
  readonly say: (msg: string) => void;
  private readonly log: AccessLog;
  private ports = new Map<string, NodePort>();
  private attachStreams = new WeakMap<ClientConn, AttachStream>();
  private wheels = new Map<number, BeatWheel>();

  constructor(opts: FleetHubOptions) {
    this.log = opts.log;
    this.say = opts.say;
    this.penalties = opts.penalties;
    this.heartbeat = opts.heartbeat ?? 10;
    const n = this.bindings.load();
    this.registry = new NodeRegistry(this.bindings);
    if (n) this.say(`fleet: ${n} enrolled node${n === 1 ? "" : "s"}`);
  }

  /** The listener hands over a node link's socket (listen-tcp.ts NodeIngress). */
  adopt(socket: Socket<unknown>, key: string, early: Uint8Array[], info: NodeSocketInfo): AdoptedSocket {
    return adoptNodeSocket(this, socket, key, early, info);
  }

  isOnline(id: string): boolean {
    return this.registry.entry(id)?.state === "online";
  }

  logAuth(info: NodeSocketInfo, status: "ok" | "error", reason: string, node?: string, extra: Record<string, string> = {}): void {
    this.log.write("auth", {
      conn_id: info.connId,
      peer: info.peer,
      status,
      ...(status === "ok" ? { method: reason } : { reason }),
      kind: "node",
      ...(node ? { node } : {}),
      ...extra,
    });
  }

  logNode(e: NodeEntry, status: "ok" | "error", detail: string, extra: Record<string, string | number> = {}): void {
    this.log.write("node", { conn_id: e.connId, peer: e.address, status, node: e.id, event_detail: detail, ...extra });
  }

  /** The verdict was yes: answer, register, and let the link layer have the socket. */
  welcome(ws: RawWsChannel, hello: NodeHello, info: NodeSocketInfo, enrolled: boolean, tokenLabels: Record<string, string>): void {
    const heartbeat = Math.min(this.heartbeat, hello.heartbeat);
    const answer: HubAnswer = { t: "welcome", id: hello.id, hub_instance: this.instance, heartbeat, enrolled };
    ws.send(JSON.stringify(answer));
    const e = this.registry.entry(hello.id)!;
    const link = new HubLink(this, e, this.port(hello.id), ws, heartbeat);
    this.registry.online(e, hello, info.peer, info.connId, link, tokenLabels);
    this.logAuth(info, "ok", info.tls ? "mtls" : "proof", hello.id, enrolled ? { enrolled: "yes" } : {});
    this.logNode(e, "ok", enrolled ? "joined (enrolled)" : "online", {
      host: hello.hostname,
      os: `${hello.os}/${hello.arch}`,
      version: hello.version,
      labels: formatLabels(e.labels),
    });
    link.start();
  }

  /**
   * TargetSource (src/daemon/target.ts): session `session` of node `via` for a name `via/session`
   * (a bare name is never a node's); undefined when `via` is no node; an error when it is offline.
   */
  target(via: string, session: string, name: string): NodeTarget | undefined {
    if (!name.includes("/") || !this.registry.has(via)) return undefined;
    return new NodeTarget(name, checkName(session), this.online(via), this.attachStreams);
  }

  /** The target for asking node `id` itself (`ls id`). */
  nodeTarget(id: string): NodeTarget {
    return new NodeTarget(`${id}/`, "", this.online(id), this.attachStreams);
  }

  private online(id: string): NodePort {
    const e = this.registry.get(id);
    if (e.state !== "online") {
      throw new PythondError("node_offline", `node '${id}' is offline (since ${new Date(e.since).toISOString()}; see: pysh nodes)`);
    }
    return this.port(id);
  }

  /** The requests' view of node `id` (kept across its links while this hub runs). */
  port(id: string): NodePort {
    let p = this.ports.get(id);
    if (!p) this.ports.set(id, (p = new NodePort(id)));
    return p;
  }

  /** The heartbeat wheel of a period (links with the same period share one timer). */
  beats(periodS: number): BeatWheel {
    let w = this.wheels.get(periodS);
    if (!w) this.wheels.set(periodS, (w = new BeatWheel(periodS)));
    return w;
  }

  /** A node's link ended (called by its HubLink). */
  linkDown(e: NodeEntry, link: HubLink, why: string): void {
    if (this.registry.offline(e, link)) this.logNode(e, "error", `offline: ${why}`);
  }

  /** `pyctl node forget ID`: unbind, and drop its link if it is online. */
  forget(id: string): boolean {
    const e = this.registry.forget(id);
    const had = this.bindings.forget(id);
    this.ports.delete(id);
    if (e?.link) e.link.close(4001, "forgotten by the hub");
    if (had) this.log.write("node", { node: id, status: "ok", event_detail: "forgotten" });
    return had || e !== undefined;
  }

  closeAll(): void {
    for (const e of this.registry.list()) e.link?.close(1001, "hub stopping");
    for (const w of this.wheels.values()) w.stop();
  }
}
