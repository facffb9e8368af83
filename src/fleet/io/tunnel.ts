/**
 * A tunnel: the Duplex (src/fleet/duplex.ts) the fleet engines speak, carried end to end between
 * a client (pysh) and a node, through the hub, with credits counted at the two ends only. The hub
 * splices the client's WebSocket to one stream of the node link and forwards each unit unchanged,
 * so whatever lies between (a slow client, a slow disk on the node) the bytes in flight in either
 * direction never exceed the window, and neither the hub nor either end grows its memory.
 *
 * A unit is one binary message on the pipe: one kind byte, then the payload.
 *   0 data   raw bytes (a Duplex binary message)
 *   1 text   UTF-8 (a Duplex text message: the engines' JSON control records)
 *   2 ack    decimal byte count: the receiving end consumed that much more (credit back)
 *   3 close  UTF-8 reason (optional): this end is done; no more units follow from it
 * Data and text count against the sender's window (at least MIN_WINDOW); ack and close do not.
 * The receiver returns credit every ACK_BATCH bytes consumed, and whenever it has consumed all that
 * arrived and that is at least half of MIN_WINDOW, so a sender blocked on a full window (whatever
 * its size) is always released, and small records cost no ack at all.
 */
import { PythondError } from "../../protocol/errors.ts";
import type { Duplex, Msg } from "../duplex.ts";

/** What a tunnel runs on: a message pipe (a mux stream, a WebSocket after `OK io`). */
export interface Pipe {
  /**
   * Sends one unit: `head` (the kind byte, and for tagged data its tag) then `payload`. The pipe
   * lays both out in its own wire form with one copy of the payload (bulk data is copied once
   * on its way to the socket, not once per layer).
   */
  send(head: readonly number[], payload?: Uint8Array | string): void;
  /**
   * Bytes the pipe's wire form puts in front of a unit (0: the unit is the message itself). For
   * bulk data the sender leaves that much free in front of its unit and calls sendRoomy.
   */
  readonly room: number;
  /**
   * Sends the unit at buf[room..], writing the pipe's own framing into buf[0..room): no copy of
   * the payload to put headers in front of it. The bytes are taken (written or copied) before it
   * returns, so the caller may reuse buf.
   */
  sendRoomy(buf: Uint8Array): void;
  onUnit(cb: (unit: Uint8Array) => void): void;
  /** The pipe itself went away (link lost, connection closed). */
  onClose(cb: (reason: string) => void): void;
  close(): void;
}

/** Bytes in flight per direction unless the spec asks for less (fan-out does: many at once). */
export const WINDOW = 4 << 20;
export const MIN_WINDOW = 64 << 10;
/** Credit is returned once this much was consumed, or whenever everything that came was consumed. */
const ACK_BATCH = 256 << 10;
const DATA = 0;
const TEXT = 1;
const ACK = 2;
const CLOSE = 3;

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A unit as one buffer (pipes whose wire form is the unit itself: a client's WebSocket). */
export function unitBytes(head: readonly number[], payload: Uint8Array | string = ""): Uint8Array {
  const body = typeof payload === "string" ? enc.encode(payload) : payload;
  const u = new Uint8Array(head.length + body.length);
  u.set(head, 0);
  u.set(body, head.length);
  return u;
}

export class TunnelDuplex implements Duplex {
  private queue: { m: Msg; size: number }[] = [];
  private readers: ((m: Msg | null) => void)[] = [];
  private writers: { resolve(): void; reject(e: Error): void }[] = [];
  /** Bytes we sent the peer has not yet credited back. */
  private unacked = 0;
  /** Bytes we consumed and have not yet credited to the peer. */
  private consumed = 0;
  private peerClosed = false;
  private closed = false;
  private why = "";

  constructor(
    private readonly pipe: Pipe,
    private readonly window = WINDOW,
  ) {
    pipe.onUnit((u) => this.receive(u));
    pipe.onClose((reason) => this.lost(reason));
  }

  private receive(u: Uint8Array): void {
    const kind = u[0];
    const payload = u.subarray(1);
    if (kind === ACK) {
      this.unacked = Math.max(0, this.unacked - Number(dec.decode(payload)));
      if (this.unacked < this.window) for (const w of this.writers.splice(0)) w.resolve();
      return;
    }
    if (kind === CLOSE) {
      this.lost(payload.length ? dec.decode(payload) : "the other side closed the connection", true);
      return;
    }
    const m: Msg = kind === TEXT ? dec.decode(payload) : payload;
    const r = this.readers.shift();
    if (r) {
      this.credit(payload.length);
      r(m);
    } else this.queue.push({ m, size: payload.length });
  }

  private credit(n: number): void {
    this.consumed += n;
    // A blocked sender has at least MIN_WINDOW unacknowledged: once all that arrived is consumed,
    // half of that is surely reached, so it is released; small control records cost no ack.
    const due = this.consumed >= ACK_BATCH || (this.queue.length === 0 && this.consumed >= MIN_WINDOW / 2);
    if (due && !this.closed && !this.peerClosed) {
      this.pipe.send([ACK], String(this.consumed));
      this.consumed = 0;
    }
  }

  private lost(reason: string, orderly = false): void {
    if (this.peerClosed) return;
    this.peerClosed = true;
    this.why = reason;
    const err = new PythondError("transfer_failed", orderly ? reason : `connection lost: ${reason}`);
    for (const w of this.writers.splice(0)) w.reject(err);
    if (this.queue.length === 0) for (const r of this.readers.splice(0)) r(null);
    if (this.closed) this.pipe.close();
  }

  send(m: Msg): Promise<void> {
    if (typeof m === "string") {
      const b = enc.encode(m);
      return this.put([TEXT], b, b.length);
    }
    return this.put([DATA], m, m.length);
  }

  /** Data with a one-byte tag in front (sh output: the fd), without copying it to add the tag. */
  sendTagged(tag: number, data: Uint8Array): Promise<void> {
    return this.put([DATA, tag], data, data.length + 1);
  }

  /** Duplex.room: the pipe's framing and the unit's kind byte. */
  get room(): number {
    return this.pipe.room + 1;
  }

  /** Duplex.sendFramed: a data unit laid out in place (bulk file data: no copy per layer). */
  sendFramed(buf: Uint8Array): Promise<void> {
    const at = this.pipe.room;
    return this.put(null, buf, buf.length - at - 1, () => {
      buf[at] = DATA;
      this.pipe.sendRoomy(buf);
    });
  }

  private async put(head: number[] | null, payload: Uint8Array, size: number, roomy?: () => void): Promise<void> {
    if (this.closed) throw new PythondError("transfer_failed", "send after close");
    if (this.peerClosed) throw new PythondError("transfer_failed", this.why);
    this.unacked += size;
    if (roomy) roomy();
    else this.pipe.send(head!, payload);
    if (this.unacked < this.window) return;
    await new Promise<void>((resolve, reject) => this.writers.push({ resolve, reject }));
  }

  async recv(): Promise<Msg | null> {
    const q = this.queue.shift();
    if (q !== undefined) {
      this.credit(q.size);
      return q.m;
    }
    if (this.peerClosed || this.closed) return null;
    return new Promise((resolve) => this.readers.push(resolve));
  }

  /** Ends our side (a close unit); the pipe itself is closed once the peer has closed too. */
  close(reason = ""): void {
    if (this.closed) return;
    this.closed = true;
    if (!this.peerClosed) this.pipe.send([CLOSE], reason);
    for (const r of this.readers.splice(0)) r(null);
    if (this.peerClosed) this.pipe.close();
  }
}
