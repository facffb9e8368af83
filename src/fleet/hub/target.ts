/**
 * Session `b` of node `a` (`pysh run a/b …`): the Target (src/daemon/target.ts) whose three doors
 * go over the node's link. The command is sent to the node as its own client would send it, with
 * the session's own name, and the node's replies (CELL, output, OK / ERR …, attach frames) come
 * back verbatim: the node's dispatcher serves it as it would a client of the same subprotocol
 * (the `streaming` flag), with caller `hub`, so the node's table decides what the hub may ask.
 *
 * Flow control: binary output is passed on and credited to the node only once this hub's client
 * has taken it (a slow client slows the cell on the node, and nobody's memory grows).
 */
import type { ClientConn } from "../../daemon/conn.ts";
import type { Status, Target } from "../../daemon/target.ts";
import type { Request } from "../../protocol/commands.ts";
import { ATTACH, cellIdOf, detachedFrom, endsDetached, isError } from "../../protocol/replies.ts";
import { PythondError } from "../../protocol/errors.ts";
import { buildFrame } from "../../protocol/frame.ts";
import type { NodePort } from "./port.ts";

const HIGH_WATER = 1 << 20;

export type AttachStream = { input(op: "t" | "b", b: string | Uint8Array): void };

/** The frame of `req` for the node: its session's own name, without options meaningless there. */
function frameFor(req: Request, session: string): string {
  const words = [session, ...req.args.slice(1)];
  for (const [k, v] of Object.entries(req.opts)) {
    if (req.cmd === "new" && k === "cwd") continue; // pysh's directory means nothing on the node
    words.push(v === true ? `--${k}` : `--${k}=${v}`);
  }
  return buildFrame(req.cmd, words, req.body === "" ? undefined : req.body);
}

export class NodeTarget implements Target {
  readonly kind = "node" as const;

  constructor(
    readonly name: string,
    readonly session: string,
    private readonly port: NodePort,
    /** The attach stream of each client attached through a node (shared by every NodeTarget). */
    private readonly attachStreams: WeakMap<ClientConn, AttachStream>,
  ) {}

  run(conn: ClientConn, req: Request): Promise<Status> {
    return this.relay(conn, req);
  }

  request(conn: ClientConn, req: Request): Promise<Status> {
    return this.relay(conn, req);
  }

  /** Sends the command; relays every reply frame until the node ends the stream. */
  relay(conn: ClientConn, req: Request, frame = frameFor(req, this.session)): Promise<Status> {
    return new Promise((resolve, reject) => {
      let last = "";
      const s = this.port.start(frame, conn.replyProtocol, {
        text: (t) => {
          last = t;
          if (conn.open) conn.reply.text(t);
        },
        binary: (b) => {
          if (!conn.open) return true;
          conn.reply.binary(b);
          return conn.reply.buffered() < HIGH_WATER;
        },
        drained: (cb) => conn.waitDrain(cb),
        end: () => resolve(isError(last) ? "error" : "ok"),
        fail: (err) => {
          const cell = cellIdOf(last);
          reject(cell ? new PythondError(err.code, `${err.message} (cell ${cell} may still be running there; get its result with: pysh wait ${this.name} ${cell})`) : err);
        },
      });
      // A client that goes (pysh exits once it has its reply, often before the node's end frame)
      // cancels the stream, which then never ends: settle here, so the command is logged and
      // nothing waits on it forever.
      conn.onClose(() => {
        s.cancel();
        resolve(last && !isError(last) ? "ok" : "error");
      });
    });
  }

  /**
   * attach: `OK attached`, then terminal bytes both ways on the stream; `detach` and `resize` go
   * to the node on the same stream. The node's `OK detached` answering our detach is swallowed
   * (the local detach handler replies itself); one the node sends by itself (Ctrl-D, session
   * ended) is relayed.
   */
  attach(conn: ClientConn, req: Request): Promise<Status> {
    const held = this.attachStreams.get(conn);
    if (req.cmd === "resize") {
      if (!held || conn.attached?.session !== this.name) throw new PythondError("usage", `not attached to '${this.name}'`);
      held.input("t", frameFor(req, this.session));
      return Promise.resolve("ok");
    }
    if (conn.attached) throw new PythondError("usage", `already attached to '${conn.attached.session}' (send detach first)`);
    return new Promise((resolve, reject) => {
      let phase: "opening" | "attached" | "over" = "opening";
      let detaching = false;
      const end = () => {
        if (conn.attached === mine) conn.attached = undefined;
        this.attachStreams.delete(conn);
      };
      const mine = {
        session: this.name,
        input: (b: Uint8Array) => s.input("b", b),
        detach: () => {
          detaching = true;
          s.input("t", "detach");
        },
      };
      const s = this.port.start(frameFor(req, this.session), conn.replyProtocol, {
        text: (t) => {
          if (phase === "opening") {
            if (conn.open) conn.reply.text(t);
            if (t !== ATTACH.attached) {
              phase = "over";
              return resolve("error");
            }
            phase = "attached";
            conn.attached = mine;
            this.attachStreams.set(conn, s);
            return resolve("ok");
          }
          if (endsDetached(t, conn.codes)) {
            if (!detaching && conn.open) conn.reply.text(t);
            end();
            s.cancel();
            return;
          }
          if (conn.open) conn.reply.text(t);
        },
        binary: (b) => {
          if (conn.open) conn.reply.binary(b);
          return true; // the node's terminal relay skips output for slow viewers itself
        },
        drained: (cb) => cb(),
        end: () => {
          end();
          if (phase === "opening") resolve("error");
        },
        fail: (err) => {
          const was = conn.attached === mine;
          end();
          if (phase === "opening") return reject(err);
          if (was && conn.open && !detaching) conn.reply.text(detachedFrom(this.name, err.message, conn.codes));
        },
      });
      conn.onClose(() => {
        s.cancel(); // a cancelled stream never ends: settle an attach still opening (as relay)
        end();
        if (phase === "opening") resolve("error");
      });
    });
  }
}
