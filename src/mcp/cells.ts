/**
 * Cells run by `pysh mcp`, with a soft deadline: each `run` gets its own connection and streams
 * into a record here; the tool answers with the full result if the cell ends within the deadline,
 * else with the cell id and what it printed so far. The cell is never stopped by the deadline (or
 * by the MCP client's own timeout): it runs on, its output keeps arriving here, and `wait` /
 * `cell_status` / `read_output` pick it up. Records are kept for the most recent cells only
 * (KEEP_CELLS, KEEP_BYTES); older cells are asked from the daemon (`poll`, kept an hour there).
 */
import { PythondError } from "../protocol/errors.ts";
import { connect, type PythondClient, type RunResult } from "../client/lib.ts";

const KEEP_CELLS = 200;
const KEEP_BYTES = 64 << 20;

/**
 * A cell's output as this server keeps it: all of it up to KEEP_OUTPUT characters; past that the
 * first KEEP_HEAD and the latest ones, with a note of what was dropped in between (a cell printing
 * in a loop for hours must not fill this process).
 */
export class OutputBuffer {
  private head = "";
  private tail = "";
  private dropped = 0;

  constructor(
    private readonly limit = Number(process.env.PYTHOND_MCP_KEEP_OUTPUT || 32 << 20),
    private readonly headSize = Math.min(1 << 20, Math.floor(limit / 4)),
  ) {}

  append(t: string): void {
    this.tail += t;
    if (this.head.length + this.tail.length <= this.limit) return;
    if (!this.dropped && !this.head) {
      this.head = this.tail.slice(0, this.headSize);
      this.tail = this.tail.slice(this.headSize);
    }
    const excess = this.head.length + this.tail.length - this.limit;
    if (excess > 0) {
      this.dropped += excess;
      this.tail = this.tail.slice(excess);
    }
  }

  get length(): number {
    return this.head.length + this.tail.length;
  }

  /** The latest output (for progress messages), without building the whole text. */
  get latest(): string {
    return this.tail.slice(-4096);
  }

  text(): string {
    if (!this.dropped) return this.tail;
    return `${this.head}\n[... ${this.dropped} characters dropped here by pysh mcp: it keeps the first ${this.head.length} and the last ${this.tail.length} of a cell's output ...]\n${this.tail}`;
  }
}

export class CellRecord {
  /** The daemon's cell id once the cell started; before that (queued behind a running cell) undefined. */
  cellId?: string;
  readonly buffer = new OutputBuffer();
  readonly started = Date.now();
  /** Settles when the cell ends (or the session dies under it); never rejects. */
  done!: Promise<CellEnd>;
  end?: CellEnd;

  constructor(
    readonly session: string,
    /** What the agent can name the cell by before its id is known (`queued-<n>`). */
    readonly handle: string,
  ) {}

  get output(): string {
    return this.buffer.text();
  }
}

export type CellEnd = { kind: "result"; result: RunResult } | { kind: "error"; error: PythondError };

export class CellRuns {
  private byId = new Map<string, CellRecord>();
  private order: CellRecord[] = [];
  private queued = 0;

  constructor(private readonly open: () => Promise<PythondClient> = () => connect()) {}

  /** Starts a cell on a connection of its own (after `setup`, a cell of the server's, if given). */
  async start(session: string, code: string, timeout?: number, setup?: string): Promise<CellRecord> {
    const client = await this.open();
    if (setup) void client.session(session).run(setup).catch(() => {}); // queued before the cell
    const rec = new CellRecord(session, `queued-${++this.queued}`);
    rec.done = client
      .session(session)
      .run(code, {
        timeout,
        onCell: (id) => {
          rec.cellId = id;
          this.byId.set(id, rec);
        },
        onOutput: (t) => rec.buffer.append(t),
      })
      .then(
        (result): CellEnd => ({ kind: "result", result }),
        (e): CellEnd => ({ kind: "error", error: PythondError.from(e) }),
      )
      .then((end) => {
        rec.end = end;
        client.close();
        return end;
      });
    this.remember(rec);
    return rec;
  }

  get(session: string, cellId: string): CellRecord | undefined {
    const r = this.byId.get(cellId);
    return r && r.session === session ? r : undefined;
  }

  private remember(rec: CellRecord): void {
    this.byId.set(rec.handle, rec);
    this.order.push(rec);
    let bytes = this.order.reduce((n, r) => n + r.buffer.length, 0);
    // Forget the oldest finished cells past the limits; running ones stay.
    for (let i = 0; i < this.order.length && (this.order.length > KEEP_CELLS || bytes > KEEP_BYTES); ) {
      const r = this.order[i]!;
      if (!r.end) {
        i++;
        continue;
      }
      this.order.splice(i, 1);
      this.byId.delete(r.handle);
      if (r.cellId) this.byId.delete(r.cellId);
      bytes -= r.buffer.length;
    }
  }
}

/** Resolves with the end of the cell, or with null once `ms` have passed (the cell runs on). */
export function within<T>(p: Promise<T>, ms: number, signal?: AbortSignal): Promise<T | null> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(null), ms);
    const stop = () => {
      clearTimeout(timer);
      resolve(null);
    };
    signal?.addEventListener("abort", stop, { once: true });
    p.then((v) => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", stop);
      resolve(v);
    });
  });
}
