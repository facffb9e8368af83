/**
 * One client connection. Frames are handled in order, each after the one before has been
 * answered (a client that pipelines `run a` then `status` gets a's reply first), with one
 * exception: consecutive `run` frames for the same local session start together, because that
 * session's worker runs them one after the other and answers in order anyway, so the next cell
 * is already waiting in the worker when one ends. Another connection is never blocked by this one.
 * Core code talks to the client through `Reply` only, so tests can use an in-memory pair.
 */
import type { Caller } from "../protocol/commands.ts";

export interface Reply {
  text(s: string): void;
  binary(b: Uint8Array): void;
  /** Bytes queued towards the client and not yet sent. */
  buffered(): number;
  close(code: number, reason: string): void;
  readonly open: boolean;
}

export class ClientConn {
  private queue: Array<string> = [];
  private head = 0;
  /** Frames being handled, and the session if they are runs that may overlap (see above). */
  private active = 0;
  private activeRuns?: string;
  private drainWaiters: Array<() => void> = [];
  private closeWaiters: Array<() => void> = [];
  open = true;
  /** Set while attached (binary frames then go to the session's terminal). */
  attached?: { session: string; input(b: Uint8Array): void; detach(): void };

  constructor(
    readonly id: number,
    readonly peer: string,
    readonly caller: Caller,
    readonly streaming: boolean,
    readonly reply: Reply,
    /** runs: the session of a `run` frame that may overlap others (see runSession), else undefined. */
    private readonly handle: (conn: ClientConn, frame: string, runs?: string) => Promise<void>,
    /** The session of a `run` frame that may overlap others for it; undefined for any other frame. */
    private readonly runSession: (frame: string) => string | undefined = () => undefined,
  ) {}

  enqueue(frame: string): void {
    this.queue.push(frame);
    this.next();
  }

  private next(): void {
    while (this.head < this.queue.length && this.open) {
      const frame = this.queue[this.head]!;
      const runs = this.runSession(frame);
      if (this.active > 0 && (runs === undefined || runs !== this.activeRuns)) return;
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
      this.handle(this, frame, runs).then(done, done);
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

  /** Told of each frame never handled because the connection closed (src/daemon/inflight.ts). */
  dropped?: (frame: string) => void;

  closed(): void {
    this.open = false;
    if (this.dropped) for (let i = this.head; i < this.queue.length; i++) this.dropped(this.queue[i]!);
    this.queue = [];
    this.head = 0;
    this.drained();
    for (const w of this.closeWaiters) w();
    this.closeWaiters = [];
  }

  onClose(cb: () => void): void {
    if (!this.open) cb();
    else this.closeWaiters.push(cb);
  }
}
