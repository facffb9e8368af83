/**
 * RFC 6455 framing in JavaScript on a Bun socket (TCP or TLS) the caller already holds: the one
 * WebSocket code of both ends of a node link.
 *
 *   new SocketWsChannel(socket, maxMessage, "server")   the hub's end (src/fleet/hub/ws-server.ts):
 *       the peer's frames must be masked, ours are not
 *   new SocketWsChannel(socket, maxMessage, "client")   the node's end (ws-connect.ts): ours are
 *       masked with a fresh random key each, as the RFC requires; the peer's must not be
 *
 * The owner passes the socket's events on (data -> feed, drain -> drain, close -> gone). Close
 * reasons are `<code> <reason>`.
 *
 * Why our own and not Bun's WebSocket client on the node: file chunks (1 MiB) are the bulk of what
 * a node receives, and Bun's client gives each message a fresh array (page faults and zeroing of
 * every page, then garbage: ~0.8 CPU s per GiB more on the receiving node than on the hub, which
 * framed its own; bench/RESULTS.md). Here a large payload goes straight from the socket's reads
 * into a reused array (src/link/recycle.ts), and a client masks in one reused scratch array.
 *
 * Each socket read is a fresh buffer of Bun's (~470 KiB while bulk flows) and garbage once parsed.
 * JSC's own collections hold that at a plateau: a receiving end's RSS grows ~50-70 MB and no more,
 * however much flows (bench/fleet-io.ts). Forcing a collection every 32 MiB of reads (as
 * src/link/garbage.ts does for other bulk paths) held it near 50 MB but cost the receiver 0.7 CPU s
 * per GiB (~20 ms a full collection), and asynchronous ones did not lower it: neither is done.
 *
 * Only what a node link needs: text and binary messages (fragmented ones too), ping/pong, close; no
 * extensions. Anything malformed closes the connection with 1002, anything too large with 1009.
 */
import { createHash } from "node:crypto";
import type { Socket } from "bun";
import { BaseChannel, type Message } from "./channel.ts";
import { takeArray } from "./recycle.ts";
import { maskInPlace, maskScratch, unmaskInto } from "./ws-mask.ts";

const dec = new TextDecoder("utf-8", { fatal: true });
const enc = new TextEncoder();
/** A frame this large is copied (unmasked) into its own array as it arrives, not gathered in the read buffer first. */
const BIG_FRAME = 16 << 10;
/** Payloads under this go out in one write with their header; larger ones as header + payload. */
const SMALL = 4096;

export type WsRole = "server" | "client";

/** Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 4.2.2). */
export function acceptKey(key: string): string {
  return createHash("sha1").update(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest("base64");
}

/** A frame header: FIN, opcode, length, and the masking key when there is one. */
export function frameHeader(opcode: number, n: number, mask?: Uint8Array): Uint8Array {
  const m = mask ? 0x80 : 0;
  const len = n < 126 ? 2 : n < 65536 ? 4 : 10;
  const h = new Uint8Array(len + (mask ? 4 : 0));
  h[0] = 0x80 | opcode;
  if (len === 2) h[1] = m | n;
  else if (len === 4) {
    h[1] = m | 126;
    h[2] = n >> 8;
    h[3] = n & 0xff;
  } else {
    h[1] = m | 127;
    new DataView(h.buffer).setBigUint64(2, BigInt(n));
  }
  if (mask) h.set(mask, len);
  return h;
}

/** Masking keys, drawn from the system's random source 1024 at a time. */
const keys = new Uint8Array(4096);
let keyAt = keys.length;
function nextMask(): Uint8Array {
  if (keyAt >= keys.length) {
    crypto.getRandomValues(keys);
    keyAt = 0;
  }
  keyAt += 4;
  return keys.slice(keyAt - 4, keyAt);
}

export class SocketWsChannel extends BaseChannel {
  private buf: Buffer = Buffer.alloc(0);
  private len = 0;
  /** A large frame whose payload is still arriving: copied (unmasked) straight into its array as it comes. */
  private big?: { fin: boolean; opcode: number; mask: Uint8Array | null; out: Uint8Array; got: number };
  private queue: Uint8Array[] = [];
  private queued = 0;
  private fragments: Uint8Array[] = [];
  private fragmentOpcode = 0;
  private fragmentBytes = 0;
  private ended = false;
  /** The close frame the peer sent, reported instead of our echo of it. */
  private peerClose?: { code: number; reason: string };
  /** Largest message accepted; raised once the link is authenticated. */
  maxMessage: number;

  constructor(
    private readonly socket: Socket<unknown>,
    maxMessage: number,
    readonly role: WsRole,
  ) {
    super();
    this.maxMessage = maxMessage;
  }

  /** Bytes handed to us but not yet taken by the socket. */
  buffered(): number {
    return this.queued;
  }

  send(data: Message): void {
    if (this.ended) return;
    if (typeof data === "string") this.sendFrame(0x1, enc.encode(data));
    else this.sendFrame(0x2, data);
  }

  /** One binary message in two pieces (a unit relayed to a node, a file chunk under its head: no join). */
  sendParts(head: Uint8Array, body: Uint8Array): void {
    if (this.ended) return;
    this.sendFrame(0x2, head, body);
  }

  /** One frame whose payload is `a` then `b`, each written as it is when large (masked into scratch by a client). */
  protected sendFrame(opcode: number, a: Uint8Array, b?: Uint8Array): void {
    const n = a.length + (b?.length ?? 0);
    if (this.role === "client") return this.writeMasked(opcode, n, a, b);
    const h = frameHeader(opcode, n);
    const small = n < SMALL;
    const tail = b ?? a;
    const first = new Uint8Array(h.length + (b ? a.length : 0) + (small ? tail.length : 0));
    first.set(h);
    if (b) first.set(a, h.length);
    if (small) first.set(tail, first.length - tail.length);
    this.write(first);
    if (!small) this.write(tail);
  }

  /**
   * A client's frame: header and payload copied into one array and the payload masked there in
   * place (ws-mask.ts: WebAssembly memory, so the XOR is SIMD), the payload at a 4-byte boundary.
   */
  private writeMasked(opcode: number, n: number, a: Uint8Array, b?: Uint8Array): void {
    const mask = nextMask();
    const h = frameHeader(opcode, n, mask);
    const pad = (4 - (h.length & 3)) & 3;
    const at = pad + h.length;
    const out = n < SMALL ? new Uint8Array(at + n) : maskScratch(at + n);
    out.set(h, pad);
    out.set(a, at);
    if (b) out.set(b, at + a.length);
    maskInPlace(out, at, n, mask);
    // the socket copies what it does not send at once (write), so the scratch is free again after
    this.write(out.subarray(pad));
  }

  /** close(reason): a reason starting with a 4-digit code sends that code; onClose gets the reason as given. */
  protected shut(reason: string): void {
    const m = /^(\d{4}) ?(.*)$/.exec(reason);
    this.closeWith(m ? Number(m[1]) : 1000, m ? m[2]! : reason, reason);
  }

  /**
   * Sends a close frame with `code` and ends the socket once it is written. onClose is told
   * `<code> <reason>` (the peer's, when it closed first), or `said` when given.
   */
  closeWith(code = 1000, reason = "", said?: string): void {
    if (this.ended) return;
    const r = enc.encode(reason).subarray(0, 120);
    const payload = new Uint8Array(2 + r.length);
    payload[0] = code >> 8;
    payload[1] = code & 0xff;
    payload.set(r, 2);
    this.sendFrame(0x8, payload);
    if (this.peerClose) this.finish(this.peerClose.code, this.peerClose.reason);
    else if (said !== undefined) this.finishWith(said);
    else this.finish(code, reason);
    if (this.queue.length === 0) this.socket.end();
  }

  /** The socket closed under us. */
  gone(): void {
    this.finish(1006, "connection lost");
  }

  private finish(code: number, reason: string): void {
    this.finishWith(`${code} ${reason}`.trim());
  }

  private finishWith(said: string): void {
    if (this.ended) return;
    this.ended = true;
    this.closed(said);
  }

  /** Hands bytes to the socket; what it does not take now is copied and kept, in order. */
  protected write(chunk: Uint8Array): void {
    if (this.queue.length === 0) {
      const n = this.socket.write(chunk);
      if (n === chunk.length) return;
      if (n < 0) return this.gone();
      chunk = chunk.subarray(n);
    }
    this.queue.push(chunk.slice());
    this.queued += chunk.length;
  }

  /** Call from the socket's `drain`. */
  drain(): void {
    while (this.queue.length > 0) {
      const c = this.queue[0]!;
      const n = this.socket.write(c);
      if (n < 0) return this.gone();
      this.queued -= n;
      if (n < c.length) {
        this.queue[0] = c.subarray(n);
        return;
      }
      this.queue.shift();
    }
    if (this.ended) this.socket.end();
    else this.drained();
  }

  /**
   * Bytes from the socket. Frames are parsed where they lie; only an incomplete frame's head (or a
   * small incomplete frame) is kept in `buf`, and a large payload goes straight into its array.
   */
  feed(d: Uint8Array): void {
    if (this.ended) return;
    let at = this.big ? this.fill(d, 0) : 0;
    if (at >= d.length) return;
    if (this.len === 0) {
      // Nothing held back: parse in place, keep only what is left of an incomplete frame.
      while (!this.ended && !this.big) {
        const used = this.frame(d, at, d.length);
        if (used === 0) break;
        at += used;
      }
      if (!this.ended && at < d.length) this.hold(d.subarray(at));
      return;
    }
    this.hold(d.subarray(at));
    let off = 0;
    while (!this.ended) {
      const used = this.frame(this.buf, off, this.len);
      if (used === 0) break;
      off += used;
      if (this.big) break; // it took the rest
    }
    if (off > 0) {
      this.buf.copyWithin(0, off, this.len);
      this.len -= off;
    }
    // Do not keep a large buffer for a link that is mostly idle.
    if (this.len === 0 && this.buf.length > 65536) this.buf = Buffer.alloc(0);
  }

  private hold(d: Uint8Array): void {
    if (this.len + d.length > this.buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.len + d.length, 4096));
      this.buf.copy(grown, 0, 0, this.len);
      this.buf = grown;
    }
    this.buf.set(d, this.len);
    this.len += d.length;
  }

  /** n payload bytes from src[s..] into out[o..], unmasked when the frame is masked. */
  private static take(src: Uint8Array, s: number, out: Uint8Array, o: number, n: number, mask: Uint8Array | null): void {
    if (mask) unmaskInto(src, s, out, o, n, mask);
    else out.set(src.subarray(s, s + n), o);
  }

  /** More of the large frame's payload from d[at..]; returns where d's next frame starts. */
  private fill(d: Uint8Array, at: number): number {
    const big = this.big!;
    const n = Math.min(d.length - at, big.out.length - big.got);
    SocketWsChannel.take(d, at, big.out, big.got, n, big.mask);
    big.got += n;
    if (big.got === big.out.length) {
      this.big = undefined;
      this.onFrame(big.fin, big.opcode, big.out);
    }
    return at + n;
  }

  /**
   * Parses one frame at b[off..end); returns the bytes it used, 0 when it is incomplete. A large
   * incomplete one becomes `big` and uses everything there is.
   */
  private frame(b: Uint8Array, off: number, end: number): number {
    const avail = end - off;
    if (avail < 2) return 0;
    const b0 = b[off]!;
    const b1 = b[off + 1]!;
    const fin = (b0 & 0x80) !== 0;
    const opcode = b0 & 0x0f;
    if ((b0 & 0x70) !== 0) return this.fail(1002, "reserved bits set");
    const masked = (b1 & 0x80) !== 0;
    if (this.role === "server" && !masked) return this.fail(1002, "client frames must be masked");
    if (this.role === "client" && masked) return this.fail(1002, "server frames must not be masked");
    let n = b1 & 0x7f;
    let p = off + 2;
    if (n === 126) {
      if (avail < 4) return 0;
      n = (b[p]! << 8) | b[p + 1]!;
      p += 2;
    } else if (n === 127) {
      if (avail < 10) return 0;
      if (b[p]! !== 0 || b[p + 1]! !== 0 || b[p + 2]! !== 0) return this.fail(1009, "message too large");
      n = b[p + 3]! * 2 ** 32 + ((b[p + 4]! << 24) >>> 0) + (b[p + 5]! << 16) + (b[p + 6]! << 8) + b[p + 7]!;
      p += 8;
    }
    if (n > this.maxMessage) return this.fail(1009, "message too large");
    let mask: Uint8Array | null = null;
    if (masked) {
      if (end - p < 4) return 0;
      // a copy (a Buffer's slice is a view): the read it came from may be reused before the payload is all here
      mask = new Uint8Array([b[p]!, b[p + 1]!, b[p + 2]!, b[p + 3]!]);
      p += 4;
    }
    const here = Math.min(n, end - p);
    if (here < n && n < BIG_FRAME) return 0; // a small frame: wait for all of it
    // its own ArrayBuffer at offset 0 (unmaskInto), not zeroed (every byte is written), a plain
    // Uint8Array (a Buffer's slice() would be a view, not the copy a consumer means), and for a
    // file chunk one used before (src/link/recycle.ts)
    const out = takeArray(n);
    SocketWsChannel.take(b, p, out, 0, here, mask);
    if (here < n) {
      this.big = { fin, opcode, mask, out, got: here };
      return end - off;
    }
    this.onFrame(fin, opcode, out);
    return p + n - off;
  }

  private onFrame(fin: boolean, opcode: number, payload: Uint8Array): void {
    if (opcode >= 0x8) {
      if (!fin || payload.length > 125) return void this.fail(1002, "bad control frame");
      if (opcode === 0x9) return this.sendFrame(0xa, payload);
      if (opcode === 0xa) return;
      if (opcode === 0x8) {
        const code = payload.length >= 2 ? (payload[0]! << 8) | payload[1]! : 1005;
        const reason = payload.length > 2 ? Buffer.from(payload.subarray(2)).toString("utf8") : "";
        this.peerClose = { code, reason };
        this.closeWith(code === 1005 ? 1000 : code, "");
        return;
      }
      return void this.fail(1002, "unknown opcode");
    }
    if (opcode === 0x0) {
      if (this.fragmentOpcode === 0) return void this.fail(1002, "continuation without a start");
    } else if (opcode === 0x1 || opcode === 0x2) {
      if (this.fragmentOpcode !== 0) return void this.fail(1002, "new message inside a fragmented one");
      if (fin) return this.message(opcode, payload);
      this.fragmentOpcode = opcode;
    } else return void this.fail(1002, "unknown opcode");
    this.fragments.push(payload);
    this.fragmentBytes += payload.length;
    if (this.fragmentBytes > this.maxMessage) return void this.fail(1009, "message too large");
    if (!fin) return;
    const whole = Buffer.concat(this.fragments);
    const op = this.fragmentOpcode;
    this.fragments = [];
    this.fragmentBytes = 0;
    this.fragmentOpcode = 0;
    this.message(op, whole);
  }

  private message(opcode: number, payload: Uint8Array): void {
    if (opcode === 0x2) return this.deliver(payload);
    let text: string;
    try {
      text = dec.decode(payload);
    } catch {
      return void this.fail(1007, "text frame is not valid UTF-8");
    }
    this.deliver(text);
  }

  private fail(code: number, reason: string): number {
    this.closeWith(code, reason);
    return 0;
  }
}
