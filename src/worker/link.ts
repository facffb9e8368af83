/**
 * The daemon's connection to one worker: hello with the worker's secret (so a reused pid or a
 * stale socket is never mistaken for our worker), request/reply by id, and `run` streams
 * (start, out frames acknowledged as the client takes them, end).
 *
 * Bun's socket.write may take only part of a buffer; the rest waits in `queue` for `drain`.
 */
import type { Socket } from "bun";
import { PythondError } from "../protocol/errors.ts";
import { WORKER_PROTOCOL } from "../protocol/version.ts";
import { encodeWorkerFrame, WorkerFrameReader, type WorkerHeader } from "./wire.ts";

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

export class WorkerLink {
  private socket!: Socket<undefined>;
  private reader = new WorkerFrameReader();
  private queue: Uint8Array[] = [];
  private nextRid = 1;
  private pending = new Map<number, Pending>();
  private runs = new Map<number, RunHandlers>();
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
    const hello = new Promise<WorkerHeader>((resolve, reject) => (link.helloWaiter = { resolve, reject }));
    try {
      link.socket = await Bun.connect({
        unix: sockPath,
        socket: {
          data: (_s, data) => link.onData(data),
          drain: () => link.flush(),
          close: () => link.onClose("connection closed"),
          error: (_s, e) => link.onClose(e.message),
        },
      });
    } catch (e) {
      throw new PythondError("session_dead", `worker socket ${sockPath}: ${(e as Error).message}`);
    }
    link.send({ op: "hello", secret, v: WORKER_PROTOCOL });
    const h = await hello;
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
    return link;
  }

  onClosed(cb: (reason: string) => void): void {
    if (this.closed) cb("connection closed");
    else this.closeHandlers.push(cb);
  }

  send(header: WorkerHeader, body?: Uint8Array | string): void {
    if (this.closed) return;
    const frame = encodeWorkerFrame(header, body);
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
    this.send({ op: "run", rid, ...(timeout ? { timeout } : {}) }, code);
    return rid;
  }

  ack(cellId: string, n: number): void {
    this.send({ op: "ack", cell: cellId, n });
  }

  close(): void {
    if (!this.closed) this.socket?.end();
    this.onClose("closed by daemon");
  }

  private onData(data: Uint8Array): void {
    let frames;
    try {
      frames = this.reader.push(data);
    } catch (e) {
      this.socket.end();
      this.onClose((e as Error).message);
      return;
    }
    for (const { header, body } of frames) this.dispatch(header, body);
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
      this.onTerminal?.(h, body); // attach traffic: src/daemon/attach.ts
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
    if (h.op === "start") run.start(String(h.cell));
    else if (h.op === "out") run.out(body, String(h.cell));
    else if (h.op === "end") {
      this.runs.delete(rid);
      run.end(h);
    }
  }

  private onClose(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    const err = new PythondError("session_dead", "the session's worker is gone");
    this.helloWaiter?.reject(new PythondError("session_dead", `worker closed the connection: ${reason}`));
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    for (const r of this.runs.values()) r.lost(reason);
    this.runs.clear();
    for (const cb of this.closeHandlers) cb(reason);
    this.closeHandlers = [];
  }
}
