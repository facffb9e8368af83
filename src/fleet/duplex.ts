/**
 * The one thing the fleet engines (files, forward) need from a transport: an ordered, two-way
 * stream of messages (text for control, binary for data) with backpressure. On a node link it is
 * one multiplexed stream with credits; in tests, the in-memory pair below, whose window is the
 * credit: `send` resolves only once the peer has fewer than `window` bytes not yet received, so a
 * producer can never run further ahead than that (memory bounded whatever the size).
 *
 * Closing: `close()` ends our side. The peer's `recv()` still returns what was queued, then null;
 * the peer's `send()` then rejects (there is nobody to take it), which is how a sender learns
 * mid-stream that its receiver gave up (the receiver sends its `err` before closing).
 */
import { PythondError } from "../protocol/errors.ts";

export type Msg = string | Uint8Array;

export interface Duplex {
  /** Sends one message; resolves when the transport can take more. Rejects once the peer closed. */
  send(m: Msg): Promise<void>;
  /** The next message from the peer; null once the peer closed and everything was received. */
  recv(): Promise<Msg | null>;
  close(): void;
  /**
   * Optional, for bulk data (file transfers): the bytes this transport writes in front of a binary
   * message for its own framing. A sender that lays its data out at buf[room..] and calls
   * sendFramed(buf) spares every layer a copy to put its header in front; the bytes are taken
   * before sendFramed returns, so buf may be reused once its promise settles.
   */
  readonly room?: number;
  sendFramed?(buf: Uint8Array): Promise<void>;
}

export function msgSize(m: Msg): number {
  return typeof m === "string" ? m.length : m.length;
}

class End implements Duplex {
  peer!: End;
  private queue: Msg[] = [];
  private queued = 0;
  closed = false;
  private readers: ((m: Msg | null) => void)[] = [];
  private writers: { resolve(): void; reject(e: Error): void }[] = [];

  constructor(private readonly window: number) {}

  async send(m: Msg): Promise<void> {
    if (this.closed) throw new PythondError("transfer_failed", "send after close");
    const p = this.peer;
    if (p.closed) throw new PythondError("transfer_failed", "the other side closed the connection");
    p.deliver(m);
    if (p.queued < this.window) return;
    await new Promise<void>((resolve, reject) => p.writers.push({ resolve, reject }));
  }

  private deliver(m: Msg): void {
    const r = this.readers.shift();
    if (r) return r(m);
    this.queue.push(m);
    this.queued += msgSize(m);
  }

  async recv(): Promise<Msg | null> {
    const m = this.queue.shift();
    if (m !== undefined) {
      this.queued -= msgSize(m);
      if (this.queued < this.peer.window) for (const w of this.writers.splice(0)) w.resolve();
      return m;
    }
    if (this.peer.closed || this.closed) return null;
    return new Promise((resolve) => this.readers.push(resolve));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    // our own pending recv()s end, and the peer's blocked senders learn nobody will take more
    for (const r of this.readers.splice(0)) r(null);
    const gone = new PythondError("transfer_failed", "the other side closed the connection");
    for (const w of this.writers.splice(0)) w.reject(gone);
    for (const r of this.peer.readers.splice(0)) r(null);
  }
}

/** Two connected in-memory ends; each side may have at most `window` bytes in flight. */
export function duplexPair(window = 1 << 20): [Duplex, Duplex] {
  const a = new End(window);
  const b = new End(window);
  a.peer = b;
  b.peer = a;
  return [a, b];
}
