/**
 * A bound on request bodies in flight across all connections (--max-inflight): without one, six
 * clients each sending a 60 MB frame at once took the daemon to 1.16 GB (each frame is held as
 * the text Bun hands us, the parsed body and the bytes going to the worker, until its command is
 * done). A large frame is counted from its arrival until its command has been answered (or its
 * connection has gone); one that would take the total over the limit is refused at once with
 * `ERR busy …`, which frees it, instead of being queued. One frame alone is always admitted, so a
 * single large cell keeps working whatever the limit, and frames under SMALL are never refused
 * (a `status` must get through while big cells load).
 */
import { PythondError } from "../protocol/errors.ts";
import { errReply } from "../protocol/replies.ts";
import type { ClientConn, Prepared, Router } from "./conn.ts";

export const DEFAULT_MAX_INFLIGHT = 128 * 1024 * 1024;
/** Frames below this are counted as nothing and never refused. */
const SMALL = 1024 * 1024;
/** What the queue carries in place of a refused frame: the reply, in the frame's turn. */
const REFUSED = "\u0000pythond-refused\u0000";

/**
 * A large body is garbage once refused or answered, but JSC collects lazily: without a collection
 * the refused ones' text stayed until the next one (as run.ts does for output, every 16 MB).
 */
function collect(): void {
  Bun.gc(true);
}

const mib = (n: number) => `${(n / (1024 * 1024)).toFixed(0)} MiB`;

export class InflightBudget {
  used = 0;
  constructor(readonly limit: number = DEFAULT_MAX_INFLIGHT) {}

  /** The frame to queue: itself (counted), or a stand-in that replies `ERR busy` in its turn. */
  admit(frame: string): string {
    const n = frame.length;
    if (n < SMALL) return frame;
    if (this.used > 0 && this.used + n > this.limit) {
      queueMicrotask(collect); // the refused text is garbage once this turn is over
      const nl = frame.indexOf("\n");
      const cmd = frame.slice(0, Math.min(nl < 0 ? frame.length : nl, 200));
      const why =
        `busy: ${mib(this.used)} of requests are in flight and this one is ${mib(n)} (limit ${mib(this.limit)}, ` +
        "pythond daemon --max-inflight MiB); nothing was run: send it again when they are done";
      return `${REFUSED}${cmd}\n${why}`;
    }
    this.used += n;
    return frame;
  }

  /** A frame admitted earlier (of this length) has been answered, or dropped with its connection. */
  release(length: number): void {
    if (length >= SMALL) {
      this.used = Math.max(0, this.used - length);
      collect();
    }
  }

  /** For a stand-in made by admit: the refused frame's first line and why; else null. */
  static refusal(frame: string): { cmd: string; why: string } | null {
    if (!frame.startsWith(REFUSED)) return null;
    const rest = frame.slice(REFUSED.length);
    const nl = rest.indexOf("\n");
    return { cmd: rest.slice(0, nl), why: rest.slice(nl + 1) };
  }
}

/** What the budgeted router queues: the inner router's parse, or a refusal, and the frame's size. */
export interface Budgeted<P extends Prepared> extends Prepared {
  inner?: P;
  refused?: { cmd: string; why: string };
  size: number;
}

/**
 * The connections' router with the budget around it: a stand-in gets its `ERR busy` reply (and
 * an access-log line, through `refused`), and a counted frame is released once handled. Only the
 * size is kept, not the frame: a closure holding it would keep it until the cell ends.
 */
export function withBudget<P extends Prepared>(
  budget: InflightBudget,
  router: Router<P>,
  refused: (conn: ClientConn, cmd: string) => void,
): Router<Budgeted<P>> {
  return {
    prepare(conn, text) {
      const r = text.charCodeAt(0) === 0 ? InflightBudget.refusal(text) : null;
      if (r) return { refused: r, size: 0 };
      const size = text.length;
      let inner: P | null;
      try {
        inner = router.prepare(conn, text);
      } catch (e) {
        budget.release(size);
        throw e;
      }
      if (inner === null) {
        budget.release(size);
        return null;
      }
      return { inner, size, overlap: inner.overlap };
    },
    handle(conn, p) {
      if (p.refused) {
        if (conn.open) conn.reply.text(errReply(new PythondError("busy", p.refused.why), conn.codes));
        refused(conn, p.refused.cmd);
        return Promise.resolve();
      }
      const size = p.size;
      if (size < SMALL) return router.handle(conn, p.inner!);
      return router.handle(conn, p.inner!).finally(() => budget.release(size));
    },
  };
}
