/**
 * The multiplexer: many concurrent requests and streams over one Channel, each with an id its
 * sender chose. Lifted from the daemon's worker link (src/worker/link.ts), which now runs on it;
 * a proxy's link to its remote daemon (src/proxy/) and a node's link to its hub are the same
 * thing on a WebSocket. Frames are frame.ts frames (header JSON with `op`, raw body); one binary
 * message each.
 *
 * Requester side
 *   request(op, fields?, body?, rid?)  -> Promise<{header, body}>: the peer answers with one
 *                                         `{op:"reply", rid, ...}`; rejected (session_dead) when
 *                                         the link goes
 *   open(build(rid) -> frame, handlers) -> rid: a stream; every frame the peer sends with that rid
 *                                         goes to handlers.frame until one whose op is an end op
 *                                         (default `end`); handlers.lost(reason) if the link goes first
 *   ack(rid, n)                        credit: the stream's consumer took n more bytes (the peer may
 *                                         run that much further ahead)
 *   cancel(rid)                        the requester lets go of the stream (`{op:"cancel", rid}`)
 *   send(header, body?) / sendFrame(bytes)   anything else (one-way messages, input on a stream)
 *   sendParts(head, body)              a frame as two pieces (bulk data: the body is not copied
 *                                         when the channel can write the pieces as one message)
 *
 * Serving side
 *   onFrame(h, body)                   (option) every frame that is not an answer to us: a peer's new
 *                                         request or stream, and one-way messages
 *   serve(rid, handlers) -> Outgoing   answers a peer's stream: Outgoing.send(op, fields, body)
 *                                         counts body bytes as unacked until the peer acks them
 *                                         (Outgoing.unacked, handlers.acked()), Outgoing.end(fields);
 *                                         the peer's further frames on that rid go to handlers.input,
 *                                         its cancel to handlers.cancel, a lost link to handlers.lost
 *
 * Both sides
 *   heartbeat(everyMs, missed = 3)     ping every everyMs; no frame at all from the peer during
 *                                         `missed` ticks in a row closes the link (a half-open TCP
 *                                         link, a frozen host); pings are answered automatically
 *   onClosed(cb), close(reason), closed
 *   ids                                (option) where request ids come from: one counter shared by
 *                                         several links to one peer (the worker's two lanes)
 *   gone(reason)                       (option) the error pending requests get when the link goes
 *
 * A text message on a binary link (the listener's `ERR auth failed…` before a link starts) goes
 * to the onText option, else closes the link with the text as the reason.
 */
import { PythondError } from "../protocol/errors.ts";
import type { Channel, Message } from "./channel.ts";
import { decodeFrame, encodeWorkerFrame, type WorkerHeader } from "./frame.ts";

export type Header = WorkerHeader;

export interface StreamHandlers {
  /** A frame of the stream; the last one has an end op. */
  frame(h: Header, body: Uint8Array): void;
  /** The link went away before the stream ended. */
  lost(reason: string): void;
}

export interface ServeHandlers {
  /** The peer sent another frame on its stream (input: typed keys, further commands). */
  input?(h: Header, body: Uint8Array): void;
  /** The peer took some of what was sent (Outgoing.unacked went down). */
  acked?(): void;
  /** The peer let go of the stream. */
  cancel?(): void;
  /** The link went away. */
  lost?(reason: string): void;
}

export interface MuxOptions {
  endOps?: readonly string[];
  ids?: { next(): number };
  onFrame?(h: Header, body: Uint8Array): void;
  onText?(text: string): void;
  /** Every message from the peer, answers and pongs included, before it is handled (liveness: src/sessions/health.ts). */
  onHeard?(): void;
  /** The error pending requests get when the link goes (default: session_dead "link closed: …"). */
  gone?(reason: string): Error;
}

interface Pending {
  resolve(r: { header: Header; body: Uint8Array }): void;
  reject(e: Error): void;
}

/** A counter of request ids (the default; share one between links to the same peer). */
export function idCounter(): { next(): number } {
  let n = 1;
  return { next: () => n++ };
}

export class Mux {
  private pending = new Map<number, Pending>();
  private streams = new Map<number, StreamHandlers>();
  private serving = new Map<number, Outgoing>();
  private closeHandlers: Array<(reason: string) => void> = [];
  private readonly endOps: ReadonlySet<string>;
  private readonly ids: { next(): number };
  /** Something came from the peer since the last heartbeat tick. */
  private heard = true;
  private beat?: ReturnType<typeof setInterval>;
  closed = false;
  closeReason = "";

  constructor(
    readonly channel: Channel,
    private readonly opts: MuxOptions = {},
  ) {
    this.endOps = new Set(opts.endOps ?? ["end"]);
    this.ids = opts.ids ?? idCounter();
    channel.onMessage((m) => this.receive(m));
    channel.onClose((reason) => this.onClose(reason));
  }

  /** Sets the handler of frames that answer nothing of ours (requests from the peer, one-way messages). */
  set onFrame(cb: ((h: Header, body: Uint8Array) => void) | undefined) {
    this.opts.onFrame = cb;
  }

  onClosed(cb: (reason: string) => void): void {
    if (this.closed) cb(this.closeReason);
    else this.closeHandlers.push(cb);
  }

  send(header: Header, body?: Uint8Array | string): void {
    if (!this.closed) this.channel.send(encodeWorkerFrame(header, body));
  }

  sendFrame(frame: Uint8Array): void {
    if (!this.closed) this.channel.send(frame);
  }

  /** One frame given as its head and its body: joined only if the channel cannot send them as they are. */
  sendParts(head: Uint8Array, body: Uint8Array): void {
    if (this.closed) return;
    if (this.channel.sendParts) return this.channel.sendParts(head, body);
    const f = new Uint8Array(head.length + body.length);
    f.set(head);
    f.set(body, head.length);
    this.channel.send(f);
  }

  /** A request with one reply. */
  request(op: string, fields: Record<string, unknown> = {}, body?: Uint8Array | string, rid?: number): Promise<{ header: Header; body: Uint8Array }> {
    if (this.closed) return Promise.reject(this.goneError(this.closeReason));
    const id = rid ?? this.ids.next();
    const p = new Promise<{ header: Header; body: Uint8Array }>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.send({ op, rid: id, ...fields }, body);
    return p;
  }

  /** Opens a stream: `build(rid)` makes its first frame (callers on a hot path format it themselves). */
  open(build: (rid: number) => Uint8Array, handlers: StreamHandlers, rid?: number): number {
    const id = rid ?? this.ids.next();
    if (this.closed) {
      const why = this.closeReason;
      queueMicrotask(() => handlers.lost(why));
      return id;
    }
    this.streams.set(id, handlers);
    this.channel.send(build(id));
    return id;
  }

  ack(rid: number, n: number): void {
    this.send({ op: "ack", rid, n });
  }

  cancel(rid: number): void {
    if (this.streams.delete(rid)) this.send({ op: "cancel", rid });
  }

  /** Answers the peer's stream `rid` (see the header comment). */
  serve(rid: number, handlers: ServeHandlers): Outgoing {
    const out = new Outgoing(this, rid, handlers);
    if (this.closed) queueMicrotask(() => handlers.lost?.(this.closeReason));
    else this.serving.set(rid, out);
    return out;
  }

  /** @internal Outgoing.end */
  forget(rid: number): void {
    this.serving.delete(rid);
  }

  heartbeat(everyMs: number, missed = 3): void {
    if (this.beat) clearInterval(this.beat);
    this.heard = true;
    let silent = 0;
    // Counted in ticks, not wall time: a tick that comes late (a busy or stopped event loop here)
    // counts once, so only the peer's silence, never our own stall, ends the link.
    this.beat = setInterval(() => {
      if (this.closed) return clearInterval(this.beat);
      silent = this.heard ? 0 : silent + 1;
      this.heard = false;
      if (silent >= missed) return this.close(`no answer to ${missed} heartbeats (${(everyMs * missed) / 1000}s)`);
      this.send({ op: "ping" });
    }, everyMs);
  }

  close(reason = "closed"): void {
    this.channel.close(reason);
    this.onClose(reason);
  }

  private goneError(reason: string): Error {
    return this.opts.gone?.(reason) ?? new PythondError("session_dead", `link closed: ${reason}`);
  }

  private receive(m: Message): void {
    this.heard = true;
    this.opts.onHeard?.();
    if (typeof m === "string") {
      if (this.opts.onText) this.opts.onText(m);
      else this.close(m);
      return;
    }
    let f;
    try {
      f = decodeFrame(m);
    } catch (e) {
      return this.close((e as Error).message);
    }
    const h = f.header;
    if (h.rid !== undefined) {
      const rid = Number(h.rid);
      if (h.op === "reply") {
        const p = this.pending.get(rid);
        if (p) {
          this.pending.delete(rid);
          return p.resolve(f);
        }
      }
      const s = this.streams.get(rid);
      if (s) {
        if (this.endOps.has(h.op)) this.streams.delete(rid);
        return s.frame(h, f.body);
      }
      const out = this.serving.get(rid);
      if (out) return out.receive(h, f.body);
    }
    if (h.op === "ping") return this.send({ op: "pong" });
    if (h.op === "pong") return;
    this.opts.onFrame?.(h, f.body);
  }

  private onClose(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.closeReason = reason;
    if (this.beat) clearInterval(this.beat);
    const err = this.goneError(reason);
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    const streams = [...this.streams.values()];
    this.streams.clear();
    for (const s of streams) s.lost(reason);
    const serving = [...this.serving.values()];
    this.serving.clear();
    for (const o of serving) o.handlers.lost?.(reason);
    const cbs = this.closeHandlers;
    this.closeHandlers = [];
    for (const cb of cbs) cb(reason);
  }
}

/** The serving half of a peer's stream: what we send on it, and the credit the peer gave back. */
export class Outgoing {
  /** Body bytes sent and not yet acknowledged by the peer. */
  unacked = 0;
  ended = false;

  constructor(
    private readonly mux: Mux,
    readonly rid: number,
    readonly handlers: ServeHandlers,
  ) {}

  send(op: string, fields: Record<string, unknown> = {}, body?: Uint8Array | string): void {
    if (this.ended) return;
    if (body !== undefined) this.unacked += typeof body === "string" ? Buffer.byteLength(body) : body.length;
    this.mux.send({ op, rid: this.rid, ...fields }, body);
  }

  /** The last frame of the stream (op `end` unless told). */
  end(fields: Record<string, unknown> = {}, op = "end"): void {
    if (this.ended) return;
    this.mux.send({ op, rid: this.rid, ...fields });
    this.ended = true;
    this.mux.forget(this.rid);
  }

  /** @internal Mux.receive */
  receive(h: Header, body: Uint8Array): void {
    if (h.op === "ack") {
      this.unacked = Math.max(0, this.unacked - Number(h.n ?? 0));
      this.handlers.acked?.();
    } else if (h.op === "cancel") {
      this.ended = true;
      this.mux.forget(this.rid);
      this.handlers.cancel?.();
    } else this.handlers.input?.(h, body);
  }
}
