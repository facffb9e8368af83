/**
 * One client connection. Frames are handled one at a time, in order (a client that pipelines
 * `run a` then `run b` gets a's reply first); another connection is never blocked by this one.
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
  private busy = false;
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
    private readonly handle: (conn: ClientConn, frame: string) => Promise<void>,
  ) {}

  enqueue(frame: string): void {
    this.queue.push(frame);
    if (!this.busy) void this.pump();
  }

  private async pump(): Promise<void> {
    this.busy = true;
    while (this.queue.length > 0 && this.open) {
      await this.handle(this, this.queue.shift()!);
    }
    this.busy = false;
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
    this.drained();
    for (const w of this.closeWaiters) w();
    this.closeWaiters = [];
  }

  onClose(cb: () => void): void {
    if (!this.open) cb();
    else this.closeWaiters.push(cb);
  }
}
