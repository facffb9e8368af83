/**
 * One client connection. Frames are handled in order, each after the one before has been
 * answered (a client that pipelines `run a` then `status` gets a's reply first), with one
 * exception: consecutive `run` frames for the same local session start together, because that
 * session's worker runs them one after the other and answers in order anyway, so the next cell
 * is already waiting in the worker when one ends. Another connection is never blocked by this one.
 * Core code talks to the client through `Reply` only, so tests can use an in-memory pair.
 *
 * Each frame is parsed once (Router.prepare, when it comes up in the queue), and the parsed form
 * both decides the overlap and goes to Router.handle.
 */
import type { Caller } from "../protocol/commands.ts";
import { SUBPROTOCOL, SUBPROTOCOL_CODES, SUBPROTOCOL_LEGACY } from "../protocol/version.ts";

export interface Reply {
  text(s: string): void;
  binary(b: Uint8Array): void;
  /** Bytes queued towards the client and not yet sent. */
  buffered(): number;
  close(code: number, reason: string): void;
  readonly open: boolean;
}

/** A frame as the router parsed it; `overlap`: the session of a run that may overlap others for it. */
export interface Prepared {
  overlap?: string;
}

export interface Router<P extends Prepared = Prepared> {
  /** Parses a text frame (once); null: nothing to do (an empty frame). */
  prepare(conn: ClientConn, text: string): P | null;
  handle(conn: ClientConn, prepared: P): Promise<void>;
}

export class ClientConn {
  private queue: Array<string> = [];
  /** The parsed form of queue[head], once parsed (it may wait for the frame before it). */
  private headPrepared?: Prepared | null;
  private head = 0;
  /** Frames being handled, and the session if they are runs that may overlap (see above). */
  private active = 0;
  private activeRuns?: string;
  private drainWaiters: Array<() => void> = [];
  private closeWaiters: Array<() => void> = [];
  open = true;
  /** Set while attached (binary frames then go to the session's terminal). */
  attached?: { session: string; input(b: Uint8Array): void; detach(): void };

  /** pythond.1 or pythond.1+codes: run streams (CELL, output, final frame); else pythond.0.4. */
  readonly streaming: boolean;
  /** pythond.1+codes: `ERR <code>: <message>`. */
  readonly codes: boolean;

  constructor(
    readonly id: number,
    readonly peer: string,
    readonly caller: Caller,
    /** The subprotocol chosen at the upgrade (version.ts). */
    readonly protocol: string,
    readonly reply: Reply,
    private readonly router: Router,
  ) {
    this.streaming = protocol === SUBPROTOCOL || protocol === SUBPROTOCOL_CODES;
    this.codes = protocol === SUBPROTOCOL_CODES;
  }

  /** The subprotocol a relay should use to get replies this connection can take verbatim. */
  get replyProtocol(): string {
    return this.codes ? SUBPROTOCOL_CODES : this.streaming ? SUBPROTOCOL : SUBPROTOCOL_LEGACY;
  }

  enqueue(frame: string): void {
    this.queue.push(frame);
    this.next();
  }

  private next(): void {
    while (this.head < this.queue.length && this.open) {
      if (this.headPrepared === undefined) this.headPrepared = this.router.prepare(this, this.queue[this.head]!);
      const prepared = this.headPrepared;
      const runs = prepared?.overlap;
      if (this.active > 0 && (runs === undefined || runs !== this.activeRuns)) return;
      this.headPrepared = undefined;
      this.queue[this.head++] = "";
      if (this.head > 64 && this.head * 2 > this.queue.length) {
        this.queue = this.queue.slice(this.head);
        this.head = 0;
      }
      this.active++;
      this.activeRuns = runs;
      const done = () => {
        this.active--;
        this.next();
      };
      if (prepared === null) {
        this.active--;
        continue;
      }
      this.router.handle(this, prepared).then(done, done);
      if (runs === undefined) return;
    }
  }

  drained(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }

  waitDrain(cb: () => void): void {
    this.drainWaiters.push(cb);
  }

  closed(): void {
    this.open = false;
    this.queue = [];
    this.head = 0;
    this.headPrepared = undefined;
    this.drained();
    for (const w of this.closeWaiters) w();
    this.closeWaiters = [];
  }

  onClose(cb: () => void): void {
    if (!this.open) cb();
    else this.closeWaiters.push(cb);
  }
}
