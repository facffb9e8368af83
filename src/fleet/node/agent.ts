/**
 * The node's side of its link: dial (dial.ts), put the multiplexer on the WebSocket, serve the
 * hub (serve.ts), and keep the link up: redial with full-jitter exponential backoff (0.5 s
 * doubling to a 30 s cap, src/link/redial.ts), later when the hub says so (retry-after), and
 * drop a link the hub has gone silent on (no heartbeat for 3 periods: a half-open connection or a
 * relay that stopped forwarding), so it is redialed instead of trusted.
 *
 * A refusal at the very first dial of this process (a bad token, another machine's id, a wrong
 * fingerprint) is fatal: the user is there to read it. After a first welcome, refusals are logged
 * and retried with backoff (an admin may fix things on the hub meanwhile).
 */
import { Mux } from "../../link/mux.ts";
import { Redialer } from "../../link/redial.ts";
import { PythondError } from "../../protocol/errors.ts";
import { dialHub, HubRefusal, type DialOptions } from "./dial.ts";
import type { NodeServer } from "./serve.ts";

export class NodeAgent {
  private redialer: Redialer;
  private everUp = false;
  private first?: { resolve(): void; reject(e: Error): void };
  private watchdog?: ReturnType<typeof setInterval>;
  private lastDown = "";

  constructor(
    private readonly o: DialOptions,
    private readonly server: NodeServer,
    private readonly say: (msg: string) => void,
  ) {
    this.redialer = new Redialer(() => this.dialOnce(), {
      baseMs: Number(process.env.PYTHOND_NODE_BACKOFF_BASE_MS || 500),
      capMs: Number(process.env.PYTHOND_NODE_BACKOFF_CAP_MS || 30_000),
      onDown: (e) => {
        const msg = e.message;
        if (msg !== this.lastDown) this.say(`hub link down: ${msg}`);
        this.lastDown = msg;
      },
    });
  }

  /** Starts dialing; resolves at the first welcome, rejects on a refusal before any welcome. */
  start(): Promise<void> {
    const p = new Promise<void>((resolve, reject) => (this.first = { resolve, reject }));
    this.redialer.start();
    return p;
  }

  private async dialOnce(): Promise<Mux> {
    let dialed;
    try {
      dialed = await dialHub({ ...this.o, hubInstance: this.server.hubInstance });
    } catch (e) {
      if (e instanceof HubRefusal && e.answer.t === "retry") this.redialer.retryAfter(e.answer.after_ms);
      else if (!this.everUp && (e instanceof HubRefusal || (e instanceof PythondError && e.code === "auth_failed"))) {
        this.redialer.close();
        this.first?.reject(e);
        this.first = undefined;
      }
      throw e;
    }
    const { channel, welcome } = dialed;
    const mux = new Mux(channel, { onText: (t) => mux.close(t) });
    this.server.bind(mux, welcome.hub_instance);
    const periodMs = welcome.heartbeat * 1000;
    if (this.watchdog) clearInterval(this.watchdog);
    this.watchdog = setInterval(() => {
      if (mux.closed) return clearInterval(this.watchdog);
      if (this.server.silentFor() > periodMs * 3 + 500) mux.close(`no heartbeat from the hub for ${welcome.heartbeat * 3}s`);
    }, Math.min(periodMs, 1000));
    mux.onClosed(() => clearInterval(this.watchdog));
    this.say(`${this.everUp ? "hub link back" : "joined"}: ${this.o.url.where} as node '${this.o.id}'${welcome.enrolled ? " (enrolled now)" : ""}`);
    this.everUp = true;
    this.lastDown = "";
    this.first?.resolve();
    this.first = undefined;
    return mux;
  }

  close(): void {
    this.redialer.close();
    if (this.watchdog) clearInterval(this.watchdog);
    this.server.close();
  }
}
