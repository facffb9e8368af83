/**
 * The server side of a WebSocket on a socket the hub's TLS listener already holds: node links end
 * here, in this process, on the one descriptor of their TLS connection.
 *
 * Why not the daemon's Bun.serve, as clients get: a remote client reaches Bun.serve through a
 * bridge (its TLS socket, a Unix socket to the daemon's own server, and that server's accepted
 * socket: three descriptors), because Bun.serve cannot tell which client certificate was
 * presented, and the listener judges it itself (listen-tcp.ts). A node link lives as long as the
 * node: at 15,000 nodes under a 20,000-descriptor cap, three per link do not fit. So the listener
 * keeps the TLS socket (it has the peer certificate: real mTLS) and this file speaks RFC 6455 on
 * it. Node links carry few, mostly small messages (heartbeats, requests, streamed output under
 * credits), so framing in JavaScript costs little next to the TLS record work Bun does natively.
 *
 * Only what a node needs: text and binary messages (fragmented ones too), ping/pong, close; no
 * extensions (none is offered back, so the client sends uncompressed frames). Client frames must
 * be masked; anything malformed closes the connection with 1002, anything too large with 1009.
 */
import { createHash } from "node:crypto";
import type { Socket } from "bun";
import { BaseChannel, type Message } from "../../link/channel.ts";
import { takeArray } from "../../link/recycle.ts";
import { unmaskInto } from "./ws-mask.ts";

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

const dec = new TextDecoder("utf-8", { fatal: true });
/** A frame this large is unmasked into its own array as it arrives, not gathered in the read buffer first. */
const BIG_FRAME = 16 << 10;
const enc = new TextEncoder();

/** The 101 answer to an upgrade request with this Sec-WebSocket-Key. */
export function upgradeResponse(key: string, protocol: string): string {
  const accept = createHash("sha1").update(key + GUID).digest("base64");
  return (
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
    `Sec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: ${protocol}\r\n\r\n`
  );
}

function header(opcode: number, n: number): Uint8Array {
  if (n < 126) return new Uint8Array([0x80 | opcode, n]);
  if (n < 65536) return new Uint8Array([0x80 | opcode, 126, n >> 8, n & 0xff]);
  const h = Buffer.alloc(10);
  h[0] = 0x80 | opcode;
  h[1] = 127;
  h.writeBigUInt64BE(BigInt(n), 2);
  return h;
}

/**
 * A Channel (src/link/channel.ts) on the socket: the listener passes the socket's events on
 * (data -> feed, drain -> drain, close -> gone). Close reasons are `<code> <reason>`.
 */
export class RawWsChannel extends BaseChannel {
  private buf: Buffer = Buffer.alloc(0);
  private len = 0;
  /** A large frame whose payload is still arriving: unmasked straight into its array as it comes. */
  private big?: { fin: boolean; opcode: number; mask: Uint8Array; out: Uint8Array; got: number };
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
  ) {
    super();
    this.maxMessage = maxMessage;
  }

  /** Bytes handed to us but not yet taken by the socket. */
  buffered(): number {
    return this.queued;
  }

  /**
   * Writes the 101 answer and, in the same write (one TLS record), a first text message;
   * `early` are bytes that arrived after the request head.
   */
  accept(key: string, protocol: string, early: Uint8Array[], first?: string): void {
    const head = enc.encode(upgradeResponse(key, protocol));
    if (first === undefined) this.write(head);
    else {
      const payload = enc.encode(first);
      const h = header(0x1, payload.length);
      const all = new Uint8Array(head.length + h.length + payload.length);
      all.set(head);
      all.set(h, head.length);
      all.set(payload, head.length + h.length);
      this.write(all);
    }
    for (const d of early) this.feed(d);
  }

  send(data: Message): void {
    if (this.ended) return;
    const payload = typeof data === "string" ? enc.encode(data) : data;
    const h = header(typeof data === "string" ? 0x1 : 0x2, payload.length);
    if (payload.length < 4096) {
      const one = new Uint8Array(h.length + payload.length);
      one.set(h);
      one.set(payload, h.length);
      this.write(one);
    } else {
      this.write(h);
      this.write(payload);
    }
  }

  /** One binary message in two pieces, each written as it is (a unit relayed to a node: no copy). */
  sendParts(head: Uint8Array, body: Uint8Array): void {
    if (this.ended) return;
    const h = header(0x2, head.length + body.length);
    const small = body.length < 4096;
    const first = new Uint8Array(h.length + head.length + (small ? body.length : 0));
    first.set(h);
    first.set(head, h.length);
    if (small) first.set(body, h.length + head.length);
    this.write(first);
    if (!small) this.write(body);
  }

  protected shut(reason: string): void {
    const m = /^(\d{4}) ?(.*)$/.exec(reason);
    this.closeWith(m ? Number(m[1]) : 1000, m ? m[2]! : reason);
  }

  /** Sends a close frame with `code` and ends the socket once it is written. */
  closeWith(code = 1000, reason = ""): void {
    if (this.ended) return;
    const r = enc.encode(reason).subarray(0, 120);
    const payload = new Uint8Array(2 + r.length);
    payload[0] = code >> 8;
    payload[1] = code & 0xff;
    payload.set(r, 2);
    const h = header(0x8, payload.length);
    this.write(h);
    this.write(payload);
    this.finish(this.peerClose?.code ?? code, this.peerClose?.reason ?? reason);
    if (this.queue.length === 0) this.socket.end();
  }

  /** The socket closed under us. */
  gone(): void {
    this.finish(1006, "connection lost");
  }

  private finish(code: number, reason: string): void {
    if (this.ended) return;
    this.ended = true;
    this.closed(`${code} ${reason}`.trim());
  }

  private write(chunk: Uint8Array): void {
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

  /** More of the large frame's payload from d[at..]; returns where d's next frame starts. */
  private fill(d: Uint8Array, at: number): number {
    const big = this.big!;
    const n = Math.min(d.length - at, big.out.length - big.got);
    unmaskInto(d, at, big.out, big.got, n, big.mask);
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
    if ((b1 & 0x80) === 0) return this.fail(1002, "client frames must be masked");
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
    if (end - p < 4) return 0;
    // a copy (a Buffer's slice is a view): the read it came from may be reused before the payload is all here
    const mask = new Uint8Array([b[p]!, b[p + 1]!, b[p + 2]!, b[p + 3]!]);
    p += 4;
    const here = Math.min(n, end - p);
    if (here < n && n < BIG_FRAME) return 0; // a small frame: wait for all of it
    // its own ArrayBuffer at offset 0 (unmaskInto), not zeroed (every byte is written), a plain
    // Uint8Array (a Buffer's slice() would be a view, not the copy a consumer means), and for a
    // file chunk one used before (src/link/recycle.ts)
    const out = takeArray(n);
    unmaskInto(b, p, out, 0, here, mask);
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
      if (opcode === 0x9) return this.write(new Uint8Array([...header(0xa, payload.length), ...payload]));
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
