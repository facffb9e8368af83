/**
 * Channel adapter for a Unix stream socket (the daemon's lanes to a worker): Bun.connect, with
 * the stream split into whole frames (frame.ts), one message each. Binary messages only: the
 * worker speaks frames, never text.
 *
 *   const ch = await UnixChannel.connect(path)   // PythondError session_dead when nobody answers
 *
 * Writes that Bun's socket.write does not take at once wait in `queue` for `drain` (counted by
 * buffered()). A stream that breaks the framing is closed with the reason.
 */
import type { Socket } from "bun";
import { PythondError } from "../protocol/errors.ts";
import { BaseChannel, type Message } from "./channel.ts";
import { FrameSplitter } from "./frame.ts";

export class UnixChannel extends BaseChannel {
  private socket!: Socket<undefined>;
  private splitter = new FrameSplitter();
  private queue: Uint8Array[] = [];
  private queuedBytes = 0;

  static async connect(sockPath: string): Promise<UnixChannel> {
    const ch = new UnixChannel();
    const onData = (data: Uint8Array) => {
      let frames;
      try {
        frames = ch.splitter.push(data);
      } catch (e) {
        ch.close((e as Error).message);
        return;
      }
      for (const f of frames) ch.deliver(f);
    };
    try {
      ch.socket = await Bun.connect({
        unix: sockPath,
        socket: {
          data: (_s, data) => onData(data),
          drain: () => ch.flush(),
          close: () => ch.closed("connection closed"),
          error: (_s, e) => ch.closed(e.message),
        },
      });
    } catch (e) {
      throw new PythondError("session_dead", `worker socket ${sockPath}: ${(e as Error).message}`);
    }
    return ch;
  }

  send(data: Message): void {
    if (!this.open) return;
    const frame = typeof data === "string" ? Buffer.from(data) : data;
    if (this.queue.length > 0) {
      this.queue.push(frame);
      this.queuedBytes += frame.length;
      return;
    }
    const n = this.socket.write(frame);
    if (n < frame.length) {
      const rest = frame.subarray(Math.max(n, 0));
      this.queue.push(rest);
      this.queuedBytes += rest.length;
    }
  }

  buffered(): number {
    return this.queuedBytes;
  }

  private flush(): void {
    while (this.queue.length > 0) {
      const head = this.queue[0]!;
      const n = this.socket.write(head);
      if (n < head.length) {
        const wrote = Math.max(n, 0);
        this.queue[0] = head.subarray(wrote);
        this.queuedBytes -= wrote;
        return;
      }
      this.queue.shift();
      this.queuedBytes -= head.length;
    }
    this.drained();
  }

  protected shut(): void {
    this.socket?.end();
  }
}
