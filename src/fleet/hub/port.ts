/**
 * A node as the hub's requests see it, across its links: request ids (unique for as long as this
 * hub runs, so a resent request is recognised by the node), the streams in flight, and the link of
 * the moment. When a link drops, the streams wait for the next one (their clients see a pause,
 * not an error) and are resumed from the last frame they saw; a stream whose client went away
 * meanwhile is cancelled on the node when the node is back.
 */
import { idCounter, type Mux } from "../../link/mux.ts";
import { encodeWorkerFrame, type WorkerHeader } from "../../link/frame.ts";
import { ResumeCursor } from "../../link/resume.ts";
import { PythondError } from "../../protocol/errors.ts";

/** How long a stream waits for its node to come back before its client gets an error. */
const RESUME_WAIT_MS = Number(process.env.PYTHOND_NODE_RESUME_WAIT || 300) * 1000;
/** `seen` (credit) every this many consumed bytes; the node holds at most 1 MiB unseen. */
const SEEN_BATCH = 256 << 10;

export interface StreamSink {
  /** A frame of the reply (text or binary), in order; returns false while the client is full. */
  text(s: string): void;
  binary(b: Uint8Array): boolean;
  /** Resolves when the client has room again. */
  drained(cb: () => void): void;
  end(): void;
  /** The node did not come back in time (or the stream cannot go on). */
  fail(err: PythondError): void;
}

const dec = new TextDecoder();

/** One request/stream to a node, for as long as it runs, whatever happens to the links. */
export class HubStream {
  readonly cursor = new ResumeCursor();
  private waitTimer?: ReturnType<typeof setTimeout>;
  private mux?: Mux;
  done = false;

  constructor(
    readonly port: NodePort,
    readonly rid: number,
    readonly frame: string,
    /** The subprotocol of the hub's client: the node replies as to a client of that one. */
    readonly protocol: string,
    readonly sink: StreamSink,
  ) {}

  /** Sends (first time) or resends/resumes (after a new link) the request on `mux`. */
  open(mux: Mux, resume: boolean): void {
    if (this.done) return;
    if (this.waitTimer) clearTimeout(this.waitTimer);
    this.waitTimer = undefined;
    this.mux = mux;
    const head: WorkerHeader = { op: resume ? "resume" : "cmd", rid: this.rid, seen: this.cursor.seq, protocol: this.protocol };
    mux.open(() => encodeWorkerFrame(head, this.frame), {
      frame: (h, body) => this.onFrame(h, body),
      lost: () => this.lost(),
    }, this.rid);
  }

  /** Input on the stream (attach: keys, detach, resize). */
  input(op: "t" | "b", body: string | Uint8Array): void {
    if (!this.done && this.mux && !this.mux.closed) this.mux.send({ op, rid: this.rid }, body);
  }

  /** The client let go: the node stops and forgets the stream (now, or when it is back). */
  cancel(): void {
    if (this.done) return;
    this.finish();
    if (this.mux && !this.mux.closed) this.mux.cancel(this.rid);
    else this.port.cancelLater(this.rid);
  }

  private onFrame(h: WorkerHeader, body: Uint8Array): void {
    if (this.done || !this.cursor.accept(h)) return; // a replay of a frame already relayed
    if (h.op === "t") {
      this.sink.text(dec.decode(body));
      return this.consumed(body.length);
    }
    if (h.op === "b") {
      if (this.sink.binary(body)) return this.consumed(body.length);
      this.sink.drained(() => this.consumed(body.length));
      return;
    }
    if (h.op === "end") {
      this.sendSeen();
      this.finish();
      this.sink.end();
    }
  }

  private consumed(n: number): void {
    if (this.cursor.consumed(n, SEEN_BATCH)) this.sendSeen();
  }

  private sendSeen(): void {
    this.cursor.said();
    if (this.mux && !this.mux.closed) this.mux.send({ op: "seen", rid: this.rid, seq: this.cursor.seq });
  }

  /** The link went with the stream unfinished: wait for the node to come back. */
  private lost(): void {
    if (this.done) return;
    this.mux = undefined;
    this.waitTimer = setTimeout(() => {
      if (this.done) return;
      this.finish();
      this.port.cancelLater(this.rid);
      this.sink.fail(new PythondError("node_offline", `node '${this.port.id}' did not come back within ${RESUME_WAIT_MS / 1000}s`));
    }, RESUME_WAIT_MS);
  }

  private finish(): void {
    this.done = true;
    if (this.waitTimer) clearTimeout(this.waitTimer);
    this.port.streams.delete(this.rid);
  }
}

export class NodePort {
  /** One counter for every link of this node while this hub runs (see the file comment). */
  readonly ids = idCounter();
  readonly streams = new Map<number, HubStream>();
  private toCancel: number[] = [];
  mux?: Mux;

  constructor(readonly id: string) {}

  /** A new link: resume every stream in flight, cancel those whose clients left. */
  up(mux: Mux): void {
    this.mux = mux;
    for (const rid of this.toCancel) mux.send({ op: "cancel", rid });
    this.toCancel = [];
    for (const s of this.streams.values()) s.open(mux, true);
  }

  down(mux: Mux): void {
    if (this.mux === mux) this.mux = undefined;
  }

  cancelLater(rid: number): void {
    if (this.mux && !this.mux.closed) this.mux.send({ op: "cancel", rid });
    else this.toCancel.push(rid);
  }

  /** Starts a request on the node (which must be online). */
  start(frame: string, protocol: string, sink: StreamSink): HubStream {
    const mux = this.mux;
    if (!mux || mux.closed) throw new PythondError("node_offline", `node '${this.id}' is offline`);
    const s = new HubStream(this, this.ids.next(), frame, protocol, sink);
    this.streams.set(s.rid, s);
    s.open(mux, false);
    return s;
  }
}
