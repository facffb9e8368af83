/**
 * One authenticated link from a node, on the hub: the multiplexer on the listener's socket
 * (ws-server.ts), heartbeats, and what a node may ask of the hub (nothing but answers: it may
 * only answer the hub's requests; its registration was its hello).
 *
 * Heartbeats are requests the node's dispatcher answers (not WebSocket pings), so a link that is
 * open at the TCP level but dead beyond it (a half-open connection, a frozen node, a relay that
 * stops forwarding) is caught: no answer for 3 intervals and the node is offline. They also carry
 * the node's session count and give the round-trip time shown by `pysh nodes`. One timer serves
 * every link (a wheel of quarter-second slots), not one timer per node.
 */
import { NODE_LINK_MAX_MESSAGE } from "../../protocol/fleet.ts";
import { Mux } from "../../link/mux.ts";
import type { FleetHub } from "./hub.ts";
import type { NodeEntry, NodeLinkLike } from "./registry.ts";
import type { NodePort } from "./port.ts";
import type { RawWsChannel } from "./ws-server.ts";

const SLOT_MS = 250;
/** Frames that answer something (never answered themselves). */
// "u": a unit of a node-service tunnel already over on this side (src/fleet/io/mux-pipe.ts)
const ANSWERS: ReadonlySet<string> = new Set(["reply", "t", "b", "end", "pong", "u"]);

/** Calls each member's beat() once per period, spread evenly over the period. */
export class BeatWheel {
  private slots: Set<HubLink>[];
  private index = 0;
  private timer?: ReturnType<typeof setInterval>;

  constructor(periodS: number) {
    this.slots = Array.from({ length: Math.max(1, Math.round((periodS * 1000) / SLOT_MS)) }, () => new Set());
  }

  add(l: HubLink): void {
    this.slots[Math.floor(Math.random() * this.slots.length)]!.add(l);
    this.timer ??= setInterval(() => this.tick(), SLOT_MS);
  }

  remove(l: HubLink): void {
    for (const s of this.slots) s.delete(l);
  }

  private tick(): void {
    const slot = this.slots[this.index]!;
    this.index = (this.index + 1) % this.slots.length;
    for (const l of slot) l.beat();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}

export class HubLink implements NodeLinkLike {
  readonly mux: Mux;
  private lastAnswer = Date.now();
  private outstanding = 0;
  private refused = new Set<string>();

  constructor(
    private readonly hub: FleetHub,
    private readonly entry: NodeEntry,
    private readonly port: NodePort,
    channel: RawWsChannel,
    readonly heartbeatS: number,
  ) {
    channel.maxMessage = NODE_LINK_MAX_MESSAGE;
    this.mux = new Mux(channel, {
      ids: port.ids,
      onFrame: (h) => {
        // A node sends nothing of its own after its hello: a request is refused and logged (once
        // per kind and link). Late frames of streams already over (a reply, an end) are dropped
        // without an answer: answering those could start two ends answering each other forever.
        if (ANSWERS.has(h.op)) return;
        if (h.rid !== undefined) this.mux.send({ op: "reply", rid: h.rid, ok: false, code: "not_allowed", error: "a node may only answer the hub" });
        if (!this.refused.has(h.op)) {
          this.refused.add(h.op);
          hub.logNode(entry, "error", `refused op from node: ${String(h.op).slice(0, 32)}`);
        }
      },
      onText: () => this.close(1008, "text after the handshake"),
    });
    this.mux.onClosed((reason) => {
      hub.beats(heartbeatS).remove(this);
      port.down(this.mux);
      hub.linkDown(entry, this, reason);
    });
  }

  start(): void {
    this.port.up(this.mux);
    this.hub.beats(this.heartbeatS).add(this);
  }

  /** One heartbeat: offline after 3 periods without an answer. */
  beat(): void {
    if (this.mux.closed) return;
    const now = Date.now();
    if (now - this.lastAnswer > this.heartbeatS * 3000 + 100) {
      this.close(4002, `no answer to 3 heartbeats (${this.heartbeatS * 3}s)`);
      return;
    }
    if (this.outstanding > 3) return; // they are counted by lastAnswer; do not pile up requests
    this.outstanding++;
    const sent = performance.now();
    this.mux.request("heartbeat").then(
      ({ header }) => {
        this.outstanding--;
        this.lastAnswer = Date.now();
        this.entry.lastHeartbeat = this.lastAnswer;
        this.entry.rttMs = Math.round((performance.now() - sent) * 10) / 10;
        if (typeof header.sessions === "number") this.entry.sessions = header.sessions;
      },
      () => {
        this.outstanding--;
      },
    );
  }

  close(code: number, reason: string): void {
    this.mux.close(`${code} ${reason}`);
  }
}
