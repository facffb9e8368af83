/**
 * `run`: a sync cell on the session's main thread.
 *
 * Our subprotocol (pythond.1) streams: `CELL <id>`, binary frames of raw output as produced, then
 * one text frame: `OK`, or `ERR execution failed\n<traceback>`. The original's subprotocol gets
 * one reply when the cell ends: the output with trailing newlines stripped, or
 * `ERR execution failed\n<output and traceback>`.
 *
 * Flow control: output is acknowledged to the worker only once the client has taken it (its
 * WebSocket buffer is below HIGH_WATER), so a slow client slows the cell, not the daemon's memory.
 * A client that goes away mid-run does not stop the cell: its output is acknowledged and
 * dropped here, and stays retrievable from the worker by cell id.
 */
import { garbage } from "../link/garbage.ts";
import { PythondError } from "../protocol/errors.ts";
import { cellReply, executionFailed, OK } from "../protocol/replies.ts";
import type { WorkerHeader } from "../protocol/worker.ts";
import type { ClientConn } from "../daemon/conn.ts";
import type { Registry } from "./registry.ts";

const HIGH_WATER = 1 << 20;
/**
 * Acks go out in batches of ACK_BATCH bytes (well under the worker's 1 MiB window), so a cell with
 * little output costs the worker no ack to wake up for; what is still owed when the cell ends is
 * never sent (the window belongs to the cell, and ends with it).
 */
const ACK_BATCH = 256 << 10;
const dec = new TextDecoder();

export function formatEnd(h: WorkerHeader): { ok: boolean; error: string } {
  return { ok: Boolean(h.ok), error: String(h.error ?? "") };
}

export function runCell(
  registry: Registry,
  conn: ClientConn,
  name: string,
  code: string,
  timeout: number | undefined,
): Promise<"ok" | "error"> {
  const session = registry.get(name);
  const link = session.link;
  const legacy = !conn.streaming;
  const chunks: Uint8Array[] = [];
  return new Promise((resolve) => {
    let waitingDrain: Array<[string, number]> = [];
    let owed = 0;
    const ack = (cellId: string, n: number) => {
      owed += n;
      if (owed < ACK_BATCH) return;
      link.ack(cellId, owed);
      owed = 0;
    };
    const flushAcks = () => {
      for (const [cell, n] of waitingDrain) ack(cell, n);
      waitingDrain = [];
    };
    link.run(code, timeout, {
      start(cellId) {
        if (!legacy && conn.open) conn.reply.text(cellReply(cellId));
      },
      out(data, cellId) {
        // Each chunk is a fresh buffer; JSC collects them lazily, so a 100 MB stream could leave
        // ~100 MB of garbage before a collection. A synchronous collection every 16 MB keeps RSS
        // growth at 20-25 MB for 100 MB; asynchronous ones (Bun.gc(false)) every 8 MB let it
        // reach 25-40 MB depending on how busy the machine is (bench/output.ts, same build).
        garbage(data.length, 16 << 20);
        if (!conn.open) return ack(cellId, data.length);
        if (legacy) {
          chunks.push(data);
          return ack(cellId, data.length);
        }
        conn.reply.binary(data);
        if (conn.reply.buffered() < HIGH_WATER) return ack(cellId, data.length);
        if (waitingDrain.length === 0) conn.waitDrain(flushAcks);
        waitingDrain.push([cellId, data.length]);
      },
      end(h) {
        flushAcks();
        const { ok, error } = formatEnd(h);
        if (conn.open) {
          if (legacy) {
            const output = dec.decode(concat(chunks)).replace(/\n+$/, "");
            if (ok) conn.reply.text(output);
            else conn.reply.text(executionFailed(`${output ? output + "\n" : ""}${error}`, false));
          } else conn.reply.text(ok ? OK : executionFailed(error, conn.codes));
        }
        resolve(ok ? "ok" : "error");
      },
      async lost() {
        flushAcks();
        const why = session.exited ? await session.exited : "the worker went away";
        const err = new PythondError("session_dead", `session '${name}' died during the cell (${why})`);
        if (conn.open) conn.reply.text(err.toFrame(conn.codes));
        resolve("error");
      },
    });
  });
}

function concat(chunks: Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const total = chunks.reduce((n, c) => n + c.length, 0);
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}
