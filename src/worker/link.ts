/**
 * The daemon's connection to one worker: hello with the worker's secret (so a reused pid or a
 * stale socket is never mistaken for our worker), request/reply by id, and `run` streams
 * (start, out frames acknowledged as the client takes them, end). Two sockets ("lanes"): runs on
 * one, everything else on the other, so that the worker's main thread can read and run cells
 * itself while its IO thread answers the rest.
 */
import type { Socket } from "bun";
import { PythondError } from "../protocol/errors.ts";
import { WORKER_PROTOCOL } from "../protocol/version.ts";
import { encodeWorkerFrame, encodeWorkerJson, WorkerFrameReader, type WorkerHeader } from "../link/frame.ts";

export interface RunHandlers {
  start(cellId: string): void;
  out(data: Uint8Array, cellId: string): void;
  end(header: WorkerHeader): void;
  /** The worker went away before the cell ended. */
  lost(reason: string): void;
}

interface Pending {
  resolve(h: WorkerHeader): void;
  reject(e: Error): void;
}

export interface HelloInfo {
  v: number;
  pid: number;
  name: string;
}

/**
 * One socket to the worker: its frame reader and the bytes Bun's socket.write did not take yet
 * (they wait in `queue` for `drain`).
 */
class Lane {
  socket!: Socket<undefined>;
  reader = new WorkerFrameReader();
  private queue: Uint8Array[] = [];

  static async open(sockPath: string, onFrame: (h: WorkerHeader, body: Uint8Array) => void, onClose: (reason: string) => void): Promise<Lane> {
    const lane = new Lane();
    const onData = (data: Uint8Array) => {
      let frames;
      try {
        frames = lane.reader.push(data);
      } catch (e) {
        lane.socket.end();
        onClose((e as Error).message);
        return;
      }
      for (const { header, body } of frames) onFrame(header, body);
    };
    try {
      lane.socket = await Bun.connect({
        unix: sockPath,
        socket: {
          data: (_s, data) => onData(data),
          drain: () => lane.flush(),
          close: () => onClose("connection closed"),
          error: (_s, e) => onClose(e.message),
        },
      });
    } catch (e) {
      throw new PythondError("session_dead", `worker socket ${sockPath}: ${(e as Error).message}`);
    }
    return lane;
  }

  send(frame: Uint8Array): void {
    if (this.queue.length > 0) {
      this.queue.push(frame);
      return;
    }
    const n = this.socket.write(frame);
    if (n < frame.length) this.queue.push(frame.subarray(Math.max(n, 0)));
  }

  private flush(): void {
    while (this.queue.length > 0) {
      const head = this.queue[0]!;
      const n = this.socket.write(head);
      if (n < head.length) {
        this.queue[0] = head.subarray(Math.max(n, 0));
        return;
      }
      this.queue.shift();
    }
  }

  end(): void {
    this.socket.end();
  }
}

export class WorkerLink {
  /** Every request but `run`; the worker's IO thread reads it. */
  private control!: Lane;
  /**
   * `run` requests only, read by the worker's main thread, which runs the cell where it reads it
   * (no hand-off between its threads). Workers that offer no run lane get runs on `control`.
   */
  private runLane?: Lane;
  private nextRid = 1;
  private pending = new Map<number, Pending>();
  private runs = new Map<number, RunHandlers>();
  /** Runs sent whose start the worker has not reported yet (they wait behind a running cell). */
  private unstarted = new Set<number>();
  private closeHandlers: Array<(reason: string) => void> = [];
  private helloWaiter?: Pending;
  closed = false;
  info?: HelloInfo;
  /** Why the worker said it is ending (idle timeout), if it said so before closing. */
  byeReason?: string;
  /** Receives the session terminal's frames (tout, tdetach) while anyone is attached. */
  onTerminal?: (h: WorkerHeader, body: Uint8Array) => void;

  static async connect(sockPath: string, secret: string): Promise<WorkerLink> {
    const link = new WorkerLink();
    const h = await link.hello(sockPath, secret);
    if (!h.ok) {
      link.close();
      throw new PythondError("session_dead", `worker refused the daemon: ${String(h.error ?? "bad secret")}`);
    }
    link.info = { v: Number(h.v), pid: Number(h.pid), name: String(h.name) };
    if (link.info.v !== WORKER_PROTOCOL) {
      link.close();
      throw new PythondError(
        "worker_incompatible",
        `was started by another pythond version (worker protocol ${link.info.v}, this daemon speaks ${WORKER_PROTOCOL})`,
      );
    }
    if (Array.isArray(h.lanes) && h.lanes.includes("run")) {
      const r = await link.hello(sockPath, secret, "run");
      if (!r.ok) {
        link.close();
        throw new PythondError("session_dead", `worker refused the daemon's run lane: ${String(r.error ?? "bad secret")}`);
      }
    }
    return link;
  }

  /** Opens a lane (the control lane first) and says hello on it. */
  private async hello(sockPath: string, secret: string, lane?: "run"): Promise<WorkerHeader> {
    const reply = new Promise<WorkerHeader>((resolve, reject) => (this.helloWaiter = { resolve, reject }));
    const opened = await Lane.open(sockPath, (h, b) => this.dispatch(h, b), (reason) => this.onClose(reason));
    if (lane) this.runLane = opened;
    else this.control = opened;
    opened.send(encodeWorkerFrame({ op: "hello", secret, v: WORKER_PROTOCOL, ...(lane ? { lane } : {}) }));
    return reply;
  }

  onClosed(cb: (reason: string) => void): void {
    if (this.closed) cb("connection closed");
    else this.closeHandlers.push(cb);
  }

  send(header: WorkerHeader, body?: Uint8Array | string): void {
    if (!this.closed) this.control.send(encodeWorkerFrame(header, body));
  }

  /** A request with one reply (status, vars, poll, ...). */
  request(op: string, fields: Record<string, unknown> = {}, body?: Uint8Array | string): Promise<WorkerHeader> {
    if (this.closed) return Promise.reject(new PythondError("session_dead", "the session's worker is gone"));
    const rid = this.nextRid++;
    const p = new Promise<WorkerHeader>((resolve, reject) => this.pending.set(rid, { resolve, reject }));
    this.send({ op, rid, ...fields }, body);
    return p;
  }

  /** Starts a sync cell; returns the request id (for acks). */
  run(code: Uint8Array | string, timeout: number | undefined, handlers: RunHandlers): number {
    const rid = this.nextRid++;
    if (this.closed) {
      queueMicrotask(() => handlers.lost("the session's worker is gone"));
      return rid;
    }
    this.runs.set(rid, handlers);
    this.unstarted.add(rid);
    const header = timeout ? `{"op":"run","rid":${rid},"timeout":${timeout}}` : `{"op":"run","rid":${rid}}`;
    (this.runLane ?? this.control).send(encodeWorkerJson(header, code));
    return rid;
  }

  /** How many runs wait in the worker for the cell before them (`status` reports it as queued). */
  get queuedRuns(): number {
    return this.unstarted.size;
  }

  ack(cellId: string, n: number): void {
    this.send({ op: "ack", cell: cellId, n });
  }

  close(): void {
    if (!this.closed) {
      this.control?.end();
      this.runLane?.end();
    }
    this.onClose("closed by daemon");
  }

  private dispatch(h: WorkerHeader, body: Uint8Array): void {
    if (h.op === "hello") {
      this.helloWaiter?.resolve(h);
      this.helloWaiter = undefined;
      return;
    }
    if (h.op === "bye") {
      this.byeReason = String(h.reason ?? "");
      return;
    }
    if (h.op === "tout" || h.op === "tdetach") {
      this.onTerminal?.(h, body); // attach traffic: src/sessions/attach.ts
      return;
    }
    const rid = Number(h.rid);
    if (h.op === "reply") {
      const p = this.pending.get(rid);
      this.pending.delete(rid);
      p?.resolve(h);
      return;
    }
    const run = this.runs.get(rid);
    if (!run) return;
    if (h.op === "start") {
      this.unstarted.delete(rid);
      run.start(String(h.cell));
    }
    else if (h.op === "out") run.out(body, String(h.cell));
    else if (h.op === "end") {
      this.runs.delete(rid);
      this.unstarted.delete(rid);
      run.end(h);
    }
  }

  private onClose(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.control?.end(); // one lane gone means the worker is: let go of the other too
    this.runLane?.end();
    const err = new PythondError("session_dead", "the session's worker is gone");
    this.helloWaiter?.reject(new PythondError("session_dead", `worker closed the connection: ${reason}`));
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    for (const r of this.runs.values()) r.lost(reason);
    this.runs.clear();
    this.unstarted.clear();
    for (const cb of this.closeHandlers) cb(reason);
    this.closeHandlers = [];
  }
}
