/**
 * The byte-level pieces of the TCP/TLS listener (listen-tcp.ts): reading a client's HTTP request
 * head, answering a rejected client ourselves (WebSocket upgrade, one `ERR …` text frame, close),
 * rewriting an accepted client's head for the daemon's own WebSocket server, and a pipe between
 * two sockets that respects backpressure both ways.
 *
 * Why a bridge rather than Bun.serve on TCP: Bun.serve cannot tell which client certificate was
 * presented, cannot log a failed handshake, and ignores TLS changes on reload. Terminating TLS
 * ourselves (Bun.listen) gives all three; the authenticated byte stream then goes to the same
 * Bun.serve that serves the Unix socket, so there is one WebSocket implementation and one
 * dispatcher. Bridged requests carry the real peer address in headers that only the bridge can
 * set (they are stripped from client input and vouched for by a per-process secret).
 */
import { createHash } from "node:crypto";
import type { Socket } from "bun";

/** Largest request head accepted (the WebSocket upgrade request is a few hundred bytes). */
export const MAX_HEAD = 16 * 1024;

export interface RequestHead {
  method: string;
  path: string;
  version: string;
  /** Header names lower-cased; a repeated header keeps its first value. */
  headers: Map<string, string>;
  /** The raw header lines, in order, for rewriting. */
  lines: string[];
}

/** Index just past the `\r\n\r\n` ending the head, or -1 when it has not all arrived. */
export function headEnd(buf: Uint8Array): number {
  const i = Buffer.from(buf.buffer, buf.byteOffset, buf.length).indexOf("\r\n\r\n"); // native search
  return i < 0 ? -1 : i + 4;
}

/** Parses a request head (without the final blank line); null when it is not HTTP/1.1-shaped. */
export function parseHead(text: string): RequestHead | null {
  const lines = text.split("\r\n").filter((l) => l !== "");
  const m = /^([A-Z]+) (\S+) (HTTP\/1\.[01])$/.exec(lines[0] ?? "");
  if (!m) return null;
  const headers = new Map<string, string>();
  const kept: string[] = [];
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon <= 0 || /[\s]/.test(line.slice(0, colon))) return null;
    const name = line.slice(0, colon).toLowerCase();
    if (!headers.has(name)) headers.set(name, line.slice(colon + 1).trim());
    kept.push(line);
  }
  return { method: m[1]!, path: m[2]!, version: m[3]!, headers, lines: kept };
}

export function isWebSocketUpgrade(h: RequestHead): boolean {
  return (
    h.method === "GET" &&
    (h.headers.get("upgrade") ?? "").toLowerCase() === "websocket" &&
    /(^|,)\s*upgrade\s*(,|$)/i.test(h.headers.get("connection") ?? "") &&
    h.headers.get("sec-websocket-version") === "13" &&
    /^[A-Za-z0-9+/]{22}==$/.test(h.headers.get("sec-websocket-key") ?? "")
  );
}

/** Headers only the bridge may set; any a client sends are dropped. */
export const BRIDGE_HEADER = {
  secret: "x-pythond-bridge",
  peer: "x-pythond-peer",
  conn: "x-pythond-conn",
  caller: "x-pythond-caller",
} as const;

/**
 * The head forwarded to the daemon's WebSocket server: the client's own lines minus its
 * credentials (the token stops here) and minus anything claiming to be from the bridge, plus the
 * bridge's headers.
 */
export function rewriteHead(
  h: RequestHead,
  bridge: { secret: string; peer: string; connId: number; caller: "local" | "remote" },
): string {
  const kept = h.lines.filter((l) => {
    const name = l.slice(0, l.indexOf(":")).toLowerCase();
    return name !== "authorization" && !name.startsWith("x-pythond-");
  });
  return [
    `${h.method} ${h.path} ${h.version}`,
    ...kept,
    `${BRIDGE_HEADER.secret}: ${bridge.secret}`,
    `${BRIDGE_HEADER.peer}: ${bridge.peer}`,
    `${BRIDGE_HEADER.conn}: ${bridge.connId}`,
    `${BRIDGE_HEADER.caller}: ${bridge.caller}`,
    "",
    "",
  ].join("\r\n");
}

/** A server-to-client WebSocket frame (never masked). */
function frame(opcode: number, payload: Uint8Array): Uint8Array {
  const n = payload.length;
  const head = n < 126 ? [0x80 | opcode, n] : [0x80 | opcode, 126, n >> 8, n & 0xff];
  const out = new Uint8Array(head.length + n);
  out.set(head);
  out.set(payload, head.length);
  return out;
}

/**
 * The whole answer to a rejected WebSocket client: the upgrade (choosing a subprotocol it
 * offered, as our clients require one), the text frame, and a close frame with `code`.
 */
export function rejectionBytes(h: RequestHead, text: string, code: number, protocols: readonly string[]): Uint8Array {
  const accept = createHash("sha1")
    .update(h.headers.get("sec-websocket-key")! + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
    .digest("base64");
  const offered = (h.headers.get("sec-websocket-protocol") ?? "").split(",").map((s) => s.trim());
  const chosen = protocols.find((p) => offered.includes(p));
  const response =
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
    `Sec-WebSocket-Accept: ${accept}\r\n${chosen ? `Sec-WebSocket-Protocol: ${chosen}\r\n` : ""}\r\n`;
  const enc = new TextEncoder();
  const parts = [
    enc.encode(response),
    frame(0x1, enc.encode(text).subarray(0, 8000)),
    frame(0x8, new Uint8Array([code >> 8, code & 0xff])),
  ];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** A plain HTTP answer (for requests that are not WebSocket upgrades, or malformed ones). */
export function httpResponse(status: number, reason: string, body: string): string {
  return (
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain; charset=utf-8\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
  );
}

const HIGH_WATER = 1 << 20;
const LOW_WATER = 256 * 1024;

/**
 * One direction of a bridged connection. Bun's socket.write may take only part of a buffer (the
 * kernel buffer is full); the rest waits here, and past HIGH_WATER the source is paused, so a slow
 * reader slows the writer instead of filling the daemon's memory.
 */
export class Pipe {
  private queue: Uint8Array[] = [];
  private queued = 0;
  private paused = false;
  private ending = false;

  constructor(
    private readonly src: Socket<unknown>,
    private readonly dst: Socket<unknown>,
  ) {}

  write(chunk: Uint8Array): void {
    if (this.queue.length === 0) {
      const n = this.dst.write(chunk);
      if (n < 0) {
        this.src.end();
        return;
      }
      if (n === chunk.length) return;
      chunk = chunk.subarray(n);
    }
    this.queue.push(chunk.slice()); // Bun may reuse the buffer it handed to `data`
    this.queued += chunk.length;
    if (this.queued > HIGH_WATER && !this.paused) {
      this.paused = true;
      this.src.pause();
    }
  }

  /** Call from the destination's `drain`. */
  drain(): void {
    while (this.queue.length > 0) {
      const c = this.queue[0]!;
      const n = this.dst.write(c);
      if (n < 0) {
        this.src.end();
        return;
      }
      this.queued -= Math.max(n, 0);
      if (n < c.length) {
        this.queue[0] = c.subarray(n);
        return;
      }
      this.queue.shift();
    }
    if (this.paused && this.queued < LOW_WATER) {
      this.paused = false;
      this.src.resume();
    }
    if (this.ending) this.dst.end();
  }

  /** The source ended: end the destination once everything queued has been written. */
  end(): void {
    this.ending = true;
    if (this.queue.length === 0) this.dst.end();
  }
}
