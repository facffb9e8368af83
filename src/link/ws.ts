/**
 * Channel adapters for WebSockets.
 *
 *   new ServerWsChannel(ws)   a WebSocket accepted by Bun.serve; the server's websocket handlers
 *                             pass its events on: message -> deliver(m), drain -> drained(),
 *                             close -> closed(reason) (Bun.serve has one handler set per server,
 *                             not per socket, so the adapter cannot register them itself)
 *   ClientWsChannel.wrap(ws)  an open client WebSocket (new WebSocket(...), after onopen)
 *
 * Binary messages arrive as Uint8Array. buffered() is the socket's own count of unsent bytes.
 */
import type { ServerWebSocket } from "bun";
import { BaseChannel, type Message } from "./channel.ts";

export class ServerWsChannel<T = unknown> extends BaseChannel {
  constructor(private readonly ws: ServerWebSocket<T>) {
    super();
  }

  send(data: Message): void {
    if (this.open && this.ws.readyState === 1) this.ws.send(data);
  }

  buffered(): number {
    return this.ws.readyState === 1 ? this.ws.getBufferedAmount() : 0;
  }

  protected shut(reason: string): void {
    if (this.ws.readyState === 1) this.ws.close(1000, reason.slice(0, 120));
  }
}

export class ClientWsChannel extends BaseChannel {
  private constructor(private readonly ws: WebSocket) {
    super();
  }

  /** Wraps an open WebSocket; takes over its onmessage/onclose. */
  static wrap(ws: WebSocket): ClientWsChannel {
    const ch = new ClientWsChannel(ws);
    ws.binaryType = "uint8array" as WebSocket["binaryType"];
    ws.onmessage = (ev) => ch.deliver(typeof ev.data === "string" ? ev.data : (ev.data as Uint8Array));
    ws.onclose = (ev) => ch.closed(ev.reason || `connection closed (code ${ev.code})`);
    return ch;
  }

  send(data: Message): void {
    if (!this.open || this.ws.readyState !== 1) return;
    this.ws.send(data);
    if (this.ws.bufferedAmount > 0 && !this.polling) {
      // A client WebSocket has no drain event: look every 10 ms while anything is unsent.
      this.polling = setInterval(() => {
        if (this.open && this.ws.bufferedAmount > 0) return;
        clearInterval(this.polling);
        this.polling = undefined;
        if (this.open) this.drained();
      }, 10);
    }
  }

  buffered(): number {
    return this.ws.bufferedAmount;
  }

  private polling?: ReturnType<typeof setInterval>;

  protected shut(reason: string): void {
    if (this.polling) clearInterval(this.polling);
    if (this.ws.readyState <= 1) this.ws.close(1000, reason.slice(0, 120));
  }
}
