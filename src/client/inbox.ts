/**
 * The queue of one connection's incoming messages, read in order with `await next()`: the
 * client's WebSocket (connect.ts) and a proxy's virtual connection on its link
 * (src/proxy/links.ts) are both one. Once ended, what was queued is still read, then every
 * `next()` fails with the reason. Kept free of imports beyond errors: `pysh run` loads it.
 */
import { PythondError } from "../protocol/errors.ts";

export type Message = { text: string } | { binary: Uint8Array };

export class Inbox {
  private queue: Message[] = [];
  private waiter?: { resolve(m: Message): void; reject(e: Error): void };
  /** Why the connection ended; undefined while it is open. */
  endedWith?: PythondError;

  push(m: Message): void {
    if (this.endedWith) return;
    const w = this.waiter;
    if (w) {
      this.waiter = undefined;
      w.resolve(m);
    } else this.queue.push(m);
  }

  /** The connection ended (the first reason counts). */
  end(err: PythondError): void {
    if (this.endedWith) return;
    this.endedWith = err;
    this.waiter?.reject(err);
    this.waiter = undefined;
  }

  next(): Promise<Message> {
    const m = this.queue.shift();
    if (m) return Promise.resolve(m);
    if (this.endedWith) return Promise.reject(this.endedWith);
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
  }

  /** The next text frame (binary frames in between are passed over: one-reply commands). */
  async nextText(): Promise<string> {
    for (;;) {
      const m = await this.next();
      if ("text" in m) return m.text;
    }
  }
}

/** The error a daemon's close (a WebSocket close code, or a link's `end` record) means. */
export function closeError(code: number, reason: string): PythondError {
  if (code === 1009) return new PythondError("frame_too_large", `frame too large: ${reason || "over the daemon's limit"}`);
  if (code === 1008) return new PythondError("auth_failed", reason || "auth failed");
  if (code === 1007) return new PythondError("bad_frame", `invalid frame: ${reason || "not valid UTF-8"}`);
  return new PythondError("daemon_unreachable", `daemon closed the connection${reason ? `: ${reason}` : code ? ` (code ${code})` : ""}`);
}
