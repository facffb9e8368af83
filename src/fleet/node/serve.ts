/**
 * A node serving its hub: every request the hub sends on the link is dispatched like a frame from
 * a client of this daemon, with caller `hub` (the command table says what a hub may ask), through
 * a connection whose replies go back on the request's stream.
 *
 * Nothing is lost across a drop: each stream is journaled (src/link/resume.ts) until the hub has
 * seen it; when the link goes, the work goes on (a cell keeps running; its output waits in the
 * journal, at most one window, then the cell waits as it would for a slow client), and on the
 * next link the hub resumes each stream from the last frame it saw. A request resent by the hub
 * (it could not know whether it arrived) is found by its id and resumed, never run twice.
 * Journals live for the hub instance that made them: a restarted hub has other ids and no
 * clients waiting, so its first link drops them (their cells run on; `pysh wait` has the rest).
 */
import { ClientConn, type ClientConn as ClientConnT } from "../../daemon/conn.ts";
import { handle, parse, type DaemonContext } from "../../daemon/dispatch.ts";
import type { Mux, Outgoing } from "../../link/mux.ts";
import type { WorkerHeader } from "../../link/frame.ts";
import { JournaledStream, RidLedger } from "../../link/resume.ts";
import { IO_OP, UNIT_OP } from "../io/mux-pipe.ts";
import { serveIo } from "../io/node-hook.ts";
import { PythondError } from "../../protocol/errors.ts";
import { errReply } from "../../protocol/replies.ts";
import { SUBPROTOCOL_CODES } from "../../protocol/version.ts";

/** Unseen reply bytes a stream may hold (the run path stops acking the worker at 1 MiB). */
const WINDOW = 1 << 20;
/** A stream whose hub has not come back after this long is let go (its cell runs on). */
const ORPHAN_MS = Number(process.env.PYTHOND_NODE_ORPHAN_AFTER || 900) * 1000;

export interface NodeDispatch {
  /** A connection of this daemon for one hub request. */
  conn(id: number, protocol: string, reply: ClientConnT["reply"], onIdle: () => void): ClientConnT;
  /** Sessions on this node (heartbeat answer). */
  sessions(): number;
}

/**
 * The dispatch of a node daemon for its hub: each hub request is a connection of its own, caller
 * `hub`, on this daemon's one router (so the command table decides what a hub may ask).
 */
export function hubDispatch(ctx: DaemonContext, peer: string, nextConnId: () => number): NodeDispatch {
  return {
    conn: (_rid, protocol, reply, onIdle) =>
      new ClientConn(nextConnId(), peer, "hub", protocol, reply, {
        prepare: (_c, text) => {
          const p = parse(ctx, text);
          if (p === null) queueMicrotask(onIdle);
          return p;
        },
        handle: async (c, p) => {
          try {
            await handle(ctx, c, p as NonNullable<ReturnType<typeof parse>>);
          } finally {
            onIdle();
          }
        },
      }),
    sessions: () => ctx.registry.list().length,
  };
}

class NodeStream {
  readonly journal: JournaledStream;
  conn!: ClientConnT;
  /** Frames handed to the connection and not yet answered. */
  private inFlight = 0;

  constructor(
    readonly rid: number,
    private readonly server: NodeServer,
    protocol: string,
    dispatch: NodeDispatch,
  ) {
    this.journal = new JournaledStream(rid);
    const j = this.journal;
    const reply = {
      text: (s: string) => j.emit("t", s),
      binary: (b: Uint8Array) => j.emit("b", b),
      buffered: () => j.buffered(),
      close: () => this.end(),
      get open() {
        return !j.ended;
      },
    };
    this.conn = dispatch.conn(rid, protocol, reply, () => {
      this.inFlight--;
      // A command is answered: the stream ends unless an attachment goes on (then detach ends it).
      if (this.inFlight === 0 && !this.conn.attached) this.end();
    });
    j.onCredit = () => this.conn.drained();
  }

  enqueue(text: string): void {
    this.inFlight++;
    this.conn.enqueue(text);
  }

  input(h: WorkerHeader, body: Uint8Array): void {
    if (h.op === "seen") {
      if (this.journal.seen(Number(h.seq ?? 0), WINDOW)) this.server.finished(this);
    } else if (h.op === "t") this.enqueue(new TextDecoder().decode(body));
    else if (h.op === "b") this.conn.attached?.input(body);
  }

  end(): void {
    if (!this.journal.ended) this.journal.emit("end", undefined, true);
  }

  /** Nobody will read this stream any more: its work goes on, its output is dropped here. */
  abandon(): void {
    this.conn.closed();
    this.journal.ended = true;
  }
}

export class NodeServer {
  private ledger = new RidLedger<NodeStream>();
  /** The hub instance the journals belong to. */
  hubInstance?: string;
  private lastHeard = Date.now();
  private sweep?: ReturnType<typeof setInterval>;

  constructor(private readonly dispatch: NodeDispatch) {}

  /** A new link (after `welcome`): serve it; a different hub instance drops the old journals. */
  bind(mux: Mux, hubInstance: string): void {
    if (this.hubInstance !== hubInstance) {
      for (const s of this.ledger.reset()) s.abandon();
      this.hubInstance = hubInstance;
    }
    this.lastHeard = Date.now();
    mux.onFrame = (h, body) => this.frame(mux, h, body);
    mux.onClosed(() => {
      for (const s of this.ledger.streams()) s.journal.detach();
    });
    this.sweep ??= setInterval(() => this.sweepOrphans(), 30_000);
  }

  /** Milliseconds since the hub last sent anything (its heartbeats come every period). */
  silentFor(): number {
    return Date.now() - this.lastHeard;
  }

  private frame(mux: Mux, h: WorkerHeader, body: Uint8Array): void {
    this.lastHeard = Date.now();
    const rid = Number(h.rid);
    switch (h.op) {
      case "heartbeat":
        return mux.send({ op: "reply", rid, ok: true, sessions: this.dispatch.sessions() });
      case "cmd":
      case "resume":
        return this.open(mux, rid, Number(h.seen ?? 0), String(h.protocol ?? ""), body);
      case "seen":
      case "cancel": {
        // A stream whose end frame has gone out is no longer the link's: its `seen` (or a cancel)
        // comes here. Nothing is answered (an answer to an answer could echo forever).
        const s = this.ledger.get(rid);
        if (!s) return;
        if (h.op === "cancel") {
          s.abandon();
          return this.finished(s);
        }
        return s.input(h, body);
      }
      case "t":
      case "b":
      case "reply":
        return; // for a stream already over
      case IO_OP:
        return serveIo(mux, h); // node services (sh, job, shell, files, forward): src/fleet/io/
      case UNIT_OP:
        return; // a unit for a tunnel already over (never answered: see above)
      default:
        if (h.rid !== undefined) mux.send({ op: "reply", rid, ok: false, code: "unknown_command", error: `a node does not serve ${String(h.op)}` });
    }
  }

  /** Starts (first time) or resumes (the same rid again) a stream on this link. */
  private open(mux: Mux, rid: number, seen: number, protocol: string, body: Uint8Array): void {
    let s = this.ledger.get(rid);
    const fresh = !s;
    if (!s) {
      if (this.ledger.wasDone(rid)) {
        // Answered and seen before (or cancelled): never run twice.
        const out = mux.serve(rid, {});
        out.send("t", { seq: Number.MAX_SAFE_INTEGER - 1 }, errReply(new PythondError("internal", `request ${rid} was answered already`), protocol === SUBPROTOCOL_CODES));
        return out.end({ seq: Number.MAX_SAFE_INTEGER });
      }
      s = new NodeStream(rid, this, protocol, this.dispatch);
      this.ledger.start(rid, s);
    }
    const stream = s;
    const out: Outgoing = mux.serve(rid, {
      input: (h, b) => {
        this.lastHeard = Date.now();
        stream.input(h, b);
      },
      cancel: () => {
        stream.abandon();
        this.finished(stream);
      },
      lost: () => stream.journal.detach(),
    });
    stream.journal.attach(out, seen);
    if (fresh) stream.enqueue(new TextDecoder().decode(body));
  }

  finished(s: NodeStream): void {
    this.ledger.finish(s.rid);
  }

  /** Streams whose hub has been away too long: let go of them (their work runs on). */
  private sweepOrphans(): void {
    const cut = Date.now() - ORPHAN_MS;
    for (const s of this.ledger.streams()) {
      if (!s.journal.linked && s.journal.touched < cut) {
        s.abandon();
        this.finished(s);
      }
    }
  }

  close(): void {
    if (this.sweep) clearInterval(this.sweep);
  }
}
