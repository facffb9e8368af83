/**
 * Bulk bytes that arrive as fresh buffers (socket reads, pipe reads, WebSocket messages) become
 * garbage once handled, and JSC collects them lazily: a 1 GiB transfer left 60-165 MB of it before
 * a collection (measured on the hub relaying, a node receiving, a node's command output). One
 * count for the whole process, and a synchronous collection whenever it passes the caller's
 * period, keeps RSS flat whatever the size.
 *
 *   garbage(n)            n more bytes of it (period 64 MiB: a collection costs a few ms)
 *   garbage(n, period)    a shorter period where that was measured to matter (src/sessions/run.ts)
 */
const PERIOD = 64 << 20;
let since = 0;

export function garbage(n: number, period = PERIOD): void {
  since += n;
  if (since < period) return;
  since = 0;
  Bun.gc(true);
}
