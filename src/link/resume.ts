/**
 * Streams that outlive the link they started on (the fleet's hub <-> node link): the serving side
 * keeps what it sent until the requester says it has it, and after a new link replays from where
 * the requester stopped; the requester resends a request it is not sure arrived, and the serving
 * side runs it once. Built on the multiplexer (mux.ts): a resumable stream is an ordinary mux
 * stream per link, tied together by the sender-chosen rid, which the requester keeps unique across
 * links (one id counter per peer, not per link).
 *
 * Frames of a resumable stream carry `seq` (1, 2, …, per stream, across links). The requester
 * answers with `{op:"seen", rid, seq}` as it consumes them: that is both its credit (the serving
 * side holds at most `window` bytes unconsumed: JournaledStream.buffered) and the journal's trim
 * point. To resume, the requester opens the stream again on the new link with its first frame
 * naming the last seq it has; the serving side replays what follows.
 *
 * Requester: ResumeCursor (dedup of replayed frames, the seq to resume from, when to send `seen`).
 * Serving side: JournaledStream (journal, replay, credit) and RidLedger (which rids ran: a resent
 * request for one of them resumes it or is answered as done, never run twice).
 */
import type { Outgoing } from "./mux.ts";

interface Entry {
  seq: number;
  op: string;
  body: Uint8Array | string | undefined;
  bytes: number;
}

/** The serving half: every frame journaled until the requester has seen it. */
export class JournaledStream {
  private journal: Entry[] = [];
  private nextSeq = 1;
  private journalBytes = 0;
  private out?: Outgoing;
  ended = false;
  /** The seq of the end frame, once sent. */
  endSeq = 0;
  /** Last time the requester was heard from (or a link carried the stream). */
  touched = Date.now();

  /** Called when buffered() went under the window again after a `seen`. */
  onCredit?: () => void;

  constructor(readonly rid: number) {}

  /** Bytes sent (or waiting for a link) that the requester has not said it has. */
  buffered(): number {
    return this.journalBytes;
  }

  /** Sends (or keeps for the next link) one frame. */
  emit(op: string, body?: Uint8Array | string, end = false): void {
    if (this.ended) return;
    const bytes = body === undefined ? 0 : typeof body === "string" ? Buffer.byteLength(body) : body.length;
    const e: Entry = { seq: this.nextSeq++, op, body, bytes };
    this.journal.push(e);
    this.journalBytes += bytes;
    if (end) {
      this.ended = true;
      this.endSeq = e.seq;
    }
    if (this.out) this.send(this.out, e);
  }

  /** The end frame also ends the mux stream (the link forgets it; a late `seen` comes as a frame of its own). */
  private send(out: Outgoing, e: Entry): void {
    if (this.ended && e.seq === this.endSeq) out.end({ seq: e.seq }, e.op);
    else out.send(e.op, { seq: e.seq }, e.body);
  }

  /** A link carries the stream from now on: replays everything after `seen`. */
  attach(out: Outgoing, seen: number): void {
    this.out = out;
    this.touched = Date.now();
    this.trim(seen);
    for (const e of this.journal) this.send(out, e);
  }

  /** The link went: frames wait in the journal for the next one. */
  detach(): void {
    this.out = undefined;
    this.touched = Date.now();
  }

  get linked(): boolean {
    return this.out !== undefined;
  }

  /** The requester has everything up to `seq`. True when the stream is over and fully seen. */
  seen(seq: number, window: number): boolean {
    this.touched = Date.now();
    const before = this.journalBytes;
    this.trim(seq);
    if (before >= window && this.journalBytes < window) this.onCredit?.();
    return this.ended && seq >= this.endSeq;
  }

  private trim(seq: number): void {
    let i = 0;
    while (i < this.journal.length && this.journal[i]!.seq <= seq) this.journalBytes -= this.journal[i++]!.bytes;
    if (i) this.journal.splice(0, i);
  }
}

/**
 * Which rids a serving side has run, so a resent request is never run twice. Live ones map to their
 * stream; finished ones are remembered (bounded by count and age) and answered as done.
 */
export class RidLedger<S> {
  private live = new Map<number, S>();
  private done = new Map<number, number>();

  constructor(
    private readonly maxDone = 100_000,
    private readonly keepMs = 3600_000,
  ) {}

  get(rid: number): S | undefined {
    return this.live.get(rid);
  }

  wasDone(rid: number): boolean {
    return this.done.has(rid);
  }

  start(rid: number, s: S): void {
    this.live.set(rid, s);
  }

  finish(rid: number): void {
    this.live.delete(rid);
    this.done.set(rid, Date.now());
    if (this.done.size > this.maxDone) {
      const cut = Date.now() - this.keepMs;
      for (const [r, t] of this.done) {
        if (this.done.size <= this.maxDone / 2 && t > cut) break;
        this.done.delete(r);
      }
    }
  }

  streams(): S[] {
    return [...this.live.values()];
  }

  /** Forgets everything (the requester restarted: its rids mean nothing any more). */
  reset(): S[] {
    const all = this.streams();
    this.live.clear();
    this.done.clear();
    return all;
  }
}

/** The requester half: what it has seen of one stream, and when to say so. */
export class ResumeCursor {
  seq = 0;
  private unsaidBytes = 0;

  /** A frame arrived: false when it is a replay of one already seen (drop it). */
  accept(h: { readonly [key: string]: unknown; seq?: unknown }): boolean {
    const seq = Number(h.seq ?? 0);
    if (seq <= this.seq) return false;
    this.seq = seq;
    return true;
  }

  /** Count consumed bytes; true when it is time to send `seen` (every `batch` bytes). */
  consumed(bytes: number, batch: number): boolean {
    this.unsaidBytes += bytes;
    if (this.unsaidBytes < batch) return false;
    this.unsaidBytes = 0;
    return true;
  }

  said(): void {
    this.unsaidBytes = 0;
  }
}
