/**
 * The daemon's connection to one worker: hello with the worker's secret (so a reused pid or a
 * stale socket is never mistaken for our worker), request/reply by id, and `run` streams
 * (start, out frames acknowledged as the client takes them, end). Two sockets ("lanes"): runs on
 * one, everything else on the other, so that the worker's main thread can read and run cells
 * itself while its IO thread answers the rest.
 *
 * Each lane is a multiplexer (src/link/mux.ts) on a Unix stream channel (src/link/unix.ts); the
 * two share one counter of request ids. What is the worker's own here: hello, the lanes, the
 * run stream's start/out/end, acks keyed by cell, and the terminal frames (tout, tdetach).
 */
import { encodeWorkerJson, type WorkerHeader } from "../link/frame.ts";
import type { Channel } from "../link/channel.ts";
import { idCounter, Mux } from "../link/mux.ts";
import { UnixChannel } from "../link/unix.ts";
import { PythondError } from "../protocol/errors.ts";
import { WORKER_PROTOCOL, type WorkerOp } from "../protocol/worker.ts";

export interface RunHandlers {
  start(cellId: string): void;
  out(data: Uint8Array, cellId: string): void;
  end(header: WorkerHeader): void;
  /** The worker went away before the cell ended. */
  lost(reason: string): void;
}

export interface HelloInfo {
  v: number;
  pid: number;
  name: string;
}

export class WorkerLink {
  /** Every request but `run`; the worker's IO thread reads it. */
  private control!: Mux;
  /**
   * `run` requests only, read by the worker's main thread, which runs the cell where it reads it
   * (no hand-off between its threads). Workers that offer no run lane get runs on `control`.
   */
  private runLane?: Mux;
  private readonly ids = idCounter();
  /** Runs sent whose start the worker has not reported yet (they wait behind a running cell). */
  private unstarted = new Set<number>();
  private closeHandlers: Array<(reason: string) => void> = [];
  private helloWaiter?: { resolve(h: WorkerHeader): void; reject(e: Error): void };
  closed = false;
  /** When the worker last sent anything (src/sessions/health.ts). */
  lastHeard = 0;
  info?: HelloInfo;
  /** Why the worker said it is ending (idle timeout), if it said so before closing. */
  byeReason?: string;
  /** Receives the session terminal's frames (tout, tdetach) while anyone is attached. */
  onTerminal?: (h: WorkerHeader, body: Uint8Array) => void;

  static connect(sockPath: string, secret: string, timeoutMs?: number): Promise<WorkerLink> {
    return WorkerLink.open(() => UnixChannel.connect(sockPath), secret, timeoutMs);
  }

  /**
   * The handshake on channels from `dial` (a Unix socket; a memory pair in unit tests). With
   * `timeoutMs`, a worker that does not answer by then (stopped with SIGSTOP: its socket still
   * accepts) fails with code `timeout` instead of holding the caller for ever.
   */
  static async open(dial: () => Promise<Channel>, secret: string, timeoutMs?: number): Promise<WorkerLink> {
    const link = new WorkerLink();
    if (timeoutMs === undefined) return link.handshake(dial, secret);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new PythondError("timeout", `did not answer the daemon within ${(timeoutMs / 1000).toFixed(1)} s`));
        link.close();
      }, timeoutMs);
    });
    return Promise.race([link.handshake(dial, secret), late]).finally(() => clearTimeout(timer));
  }

  private async handshake(dial: () => Promise<Channel>, secret: string): Promise<WorkerLink> {
    const link = this;
    const h = await link.hello(dial, secret);
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
      const r = await link.hello(dial, secret, "run");
      if (!r.ok) {
        link.close();
        throw new PythondError("session_dead", `worker refused the daemon's run lane: ${String(r.error ?? "bad secret")}`);
      }
    }
    return link;
  }

  /** Opens a lane (the control lane first) and says hello on it. */
  private async hello(dial: () => Promise<Channel>, secret: string, lane?: "run"): Promise<WorkerHeader> {
    const reply = new Promise<WorkerHeader>((resolve, reject) => (this.helloWaiter = { resolve, reject }));
    const channel = await dial();
    if (this.closed) {
      channel.close("closed by daemon"); // given up on (timeout) while connecting
      throw new PythondError("session_dead", "the daemon gave up on this worker");
    }
    const mux = new Mux(channel, {
      ids: this.ids,
      onFrame: (h, b) => this.unsolicited(h, b),
      onHeard: () => (this.lastHeard = Date.now()),
      gone: () => new PythondError("session_dead", "the session's worker is gone"),
    });
    mux.onClosed((reason) => this.onClose(reason));
    if (lane) this.runLane = mux;
    else this.control = mux;
    mux.send({ op: "hello", secret, v: WORKER_PROTOCOL, ...(lane ? { lane } : {}) });
    return reply;
  }

  onClosed(cb: (reason: string) => void): void {
    if (this.closed) cb("connection closed");
    else this.closeHandlers.push(cb);
  }

  send(header: WorkerHeader & { op: WorkerOp }, body?: Uint8Array | string): void {
    if (!this.closed) this.control.send(header, body);
  }

  /** A request with one reply (status, vars, poll, ...). */
  async request(op: WorkerOp, fields: Record<string, unknown> = {}, body?: Uint8Array | string): Promise<WorkerHeader> {
    if (this.closed) throw new PythondError("session_dead", "the session's worker is gone");
    return (await this.control.request(op, fields, body)).header;
  }

  /** Starts a sync cell; returns the request id (for acks). */
  run(code: Uint8Array | string, timeout: number | undefined, handlers: RunHandlers): number {
    if (this.closed) {
      queueMicrotask(() => handlers.lost("the session's worker is gone"));
      return this.ids.next();
    }
    const lane = this.runLane ?? this.control;
    let rid = 0;
    rid = lane.open(
      (id) => encodeWorkerJson(timeout ? `{"op":"run","rid":${id},"timeout":${timeout}}` : `{"op":"run","rid":${id}}`, code),
      {
        frame: (h, body) => {
          if (h.op === "start") {
            this.unstarted.delete(rid);
            handlers.start(String(h.cell));
          } else if (h.op === "out") handlers.out(body, String(h.cell));
          else if (h.op === "end") {
            this.unstarted.delete(rid);
            handlers.end(h);
          }
        },
        lost: (reason) => {
          this.unstarted.delete(rid);
          handlers.lost(reason);
        },
      },
    );
    this.unstarted.add(rid);
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
      this.control?.close("closed by daemon");
      this.runLane?.close("closed by daemon");
    }
    this.onClose("closed by daemon");
  }

  /** Frames that answer no request: hello, bye, and the terminal's. */
  private unsolicited(h: WorkerHeader, body: Uint8Array): void {
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
    }
  }

  private onClose(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.control?.close(reason); // one lane gone means the worker is: let go of the other too
    this.runLane?.close(reason);
    this.helloWaiter?.reject(new PythondError("session_dead", `worker closed the connection: ${reason}`));
    this.unstarted.clear();
    for (const cb of this.closeHandlers) cb(reason);
    this.closeHandlers = [];
  }
}
