/**
 * The server side of a WebSocket on a socket the hub's TLS listener already holds: node links end
 * here, in this process, on the one descriptor of their TLS connection.
 *
 * Why not the daemon's Bun.serve, as clients get: a remote client reaches Bun.serve through a
 * bridge (its TLS socket, a Unix socket to the daemon's own server, and that server's accepted
 * socket: three descriptors), because Bun.serve cannot tell which client certificate was
 * presented, and the listener judges it itself (listen-tcp.ts). A node link lives as long as the
 * node: at 15,000 nodes under a 20,000-descriptor cap, three per link do not fit. So the listener
 * keeps the TLS socket (it has the peer certificate: real mTLS), answers the upgrade here and
 * frames with src/link/ws-socket.ts (the node's end uses the same code as a client). No extension
 * is offered back, so the client sends uncompressed frames.
 */
import type { Socket } from "bun";
import { acceptKey, frameHeader, SocketWsChannel } from "../../link/ws-socket.ts";

const enc = new TextEncoder();

/** The 101 answer to an upgrade request with this Sec-WebSocket-Key. */
export function upgradeResponse(key: string, protocol: string): string {
  const accept = acceptKey(key);
  return (
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
    `Sec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: ${protocol}\r\n\r\n`
  );
}

/**
 * The hub's end of a node link (src/link/ws-socket.ts, server role), answering the upgrade itself.
 * The listener passes the socket's events on (data -> feed, drain -> drain, close -> gone).
 */
export class RawWsChannel extends SocketWsChannel {
  constructor(socket: Socket<unknown>, maxMessage: number) {
    super(socket, maxMessage, "server");
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
      const h = frameHeader(0x1, payload.length);
      const all = new Uint8Array(head.length + h.length + payload.length);
      all.set(head);
      all.set(h, head.length);
      all.set(payload, head.length + h.length);
      this.write(all);
    }
    for (const d of early) this.feed(d);
  }
}
