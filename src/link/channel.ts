/**
 * The link layer's bottom: a Channel is one ordered, message-preserving, two-way connection.
 * Every conversation between pythond processes runs on one (daemon <-> worker, proxy <-> remote
 * daemon, and next hub <-> node); the multiplexer (mux.ts) is written against this interface only.
 *
 *   send(data)        text (string) or binary (Uint8Array) message; never throws: after close it
 *                     is dropped (the close handler has said, or will say, why)
 *   onMessage(cb)     the one receiver of incoming messages, in order (what arrived before it
 *                     was set is kept and handed to it first, a microtask later)
 *   onDrain(cb)       called when buffered() has gone down after a send could not leave at once
 *   onClose(cb)       called once, with a reason, whichever side closed
 *   buffered()        bytes accepted by send() and not yet handed to the operating system
 *   close(reason?)    closes; onClose runs (once) with this reason
 *   open              false once closed
 *
 * Adapters: ws.ts (a WebSocket accepted by Bun.serve, a client WebSocket), ws-socket.ts (our own
 * WebSocket framing on a Bun socket: both ends of a node link), unix.ts (the worker's Unix stream,
 * split into frames), and memoryPair() below for unit tests: no process, no socket.
 */

export type Message = string | Uint8Array;

export interface Channel {
  send(data: Message): void;
  /** Optional: one binary message given in two pieces, written without joining them (bulk data). */
  sendParts?(head: Uint8Array, body: Uint8Array): void;
  onMessage(cb: (data: Message) => void): void;
  onDrain(cb: () => void): void;
  onClose(cb: (reason: string) => void): void;
  buffered(): number;
  close(reason?: string): void;
  readonly open: boolean;
}

/** The handler plumbing every adapter shares: one receiver, drain and close lists, close once. */
export abstract class BaseChannel implements Channel {
  private receive?: (data: Message) => void;
  private early: Message[] = [];
  private drainCbs: Array<() => void> = [];
  private closeCbs: Array<(reason: string) => void> = [];
  private closedWith?: string;

  abstract send(data: Message): void;
  abstract buffered(): number;
  /** Closes the transport itself; `closed(reason)` must follow (now or when it reports). */
  protected abstract shut(reason: string): void;

  get open(): boolean {
    return this.closedWith === undefined;
  }

  /**
   * What arrived before is handed over a microtask later, in order (what arrives meanwhile queues
   * behind it): as a socket's events come after the code that set the reader up, so a reader
   * finishes wiring itself (a Mux gets its frame handler) before its first message.
   */
  onMessage(cb: (data: Message) => void): void {
    this.receive = cb;
    if (this.early.length === 0 || this.handing) return;
    this.handing = true;
    queueMicrotask(() => this.handOver());
  }

  /** Early messages are being handed to the reader: new ones queue behind them. */
  private handing = false;

  /** Hands the kept messages to the reader (before a close, which comes after them, as on a socket). */
  private handOver(): void {
    if (!this.handing) return;
    this.handing = false;
    while (this.early.length > 0 && this.receive) this.receive(this.early.shift()!);
  }

  onDrain(cb: () => void): void {
    this.drainCbs.push(cb);
  }

  onClose(cb: (reason: string) => void): void {
    if (this.closedWith !== undefined) queueMicrotask(() => cb(this.closedWith!));
    else this.closeCbs.push(cb);
  }

  close(reason = "closed"): void {
    if (this.closedWith !== undefined) return;
    this.shut(reason);
    this.closed(reason);
  }

  /** The transport is gone (either side): runs the close handlers once. */
  closed(reason: string): void {
    if (this.closedWith !== undefined) return;
    this.handOver();
    this.closedWith = reason;
    const cbs = this.closeCbs;
    this.closeCbs = [];
    this.drainCbs = [];
    for (const cb of cbs) cb(reason);
  }

  /** The transport took what was buffered. */
  drained(): void {
    for (const cb of this.drainCbs) cb();
  }

  /**
   * From now on messages are kept, in order, for the next onMessage: a hand-over from one reader to
   * another (a node's dial to its multiplexer), when the next message may come in the same read.
   */
  keepForNext(): void {
    this.receive = undefined;
  }

  /** A message arrived. */
  deliver(data: Message): void {
    if (this.closedWith !== undefined) return;
    if (this.receive && !this.handing) this.receive(data);
    else this.early.push(data);
  }
}

/**
 * Two channels joined back to back, for tests. Delivery is asynchronous (a microtask later, in
 * order), as it is on a socket: a test sees the same interleavings a real link allows. A message
 * counts in the sender's buffered() until delivered; `hold()` stops delivery (a peer that stops
 * reading), `release()` resumes it.
 */
export class MemoryChannel extends BaseChannel {
  peer!: MemoryChannel;
  private queue: Message[] = [];
  private queuedBytes = 0;
  private scheduled = false;
  private held = false;

  send(data: Message): void {
    if (!this.open || !this.peer.open) return;
    // A copy: the sender may reuse its buffer, as it may with a real socket (Uint8Array's slice:
    // a Buffer's own slice is a view).
    this.queue.push(typeof data === "string" ? data : Uint8Array.prototype.slice.call(data));
    this.queuedBytes += data.length;
    this.schedule();
  }

  buffered(): number {
    return this.queuedBytes;
  }

  /** Stops delivering this side's sends (the peer "stops reading"); release() resumes. */
  hold(): void {
    this.held = true;
  }

  release(): void {
    this.held = false;
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled || this.held) return;
    this.scheduled = true;
    queueMicrotask(() => this.flush());
  }

  private flush(): void {
    this.scheduled = false;
    if (this.held) return;
    const batch = this.queue;
    this.queue = [];
    for (const m of batch) {
      this.queuedBytes -= m.length;
      this.peer.deliver(m);
    }
    if (batch.length) this.drained();
  }

  protected shut(reason: string): void {
    this.queue = [];
    this.queuedBytes = 0;
    // The peer learns of it after what was already delivered, as over a socket.
    queueMicrotask(() => this.peer.closed(reason));
  }
}

/** Two connected in-memory channels. */
export function memoryPair(): [MemoryChannel, MemoryChannel] {
  const a = new MemoryChannel();
  const b = new MemoryChannel();
  a.peer = b;
  b.peer = a;
  return [a, b];
}
