/**
 * Attach, daemon side: relays a client's terminal to the session's PTY, which lives in the worker
 * (DESIGN decision 2) — the daemon keeps no terminal state, so a restarted daemon simply lets
 * clients attach again to the same REPL.
 *
 * Client frames (REFERENCE "Attach", unchanged for pythond.0.4 clients):
 *   `attach <name> [rows cols] [--read-only]` -> `OK attached`, then binary frames both ways;
 *   `detach` -> `OK detached`; `resize <name> <rows> <cols>` -> `OK resized <rows>x<cols>`.
 * The daemon may also end an attachment by itself: `OK detached` (Ctrl-D typed at the REPL) or
 * `ERR detached from session '<name>': <why>` (the session ended, or the link to it broke).
 *
 * Worker ops: attach {rid, aid, rows, cols} -> reply, then `tout {aid}` (the scrollback replay,
 * for this attachment only), then `tout` without aid (live bytes, for every attachment on this
 * link); `tin {aid}` (typed bytes), `detach {aid}`, `resize {rows, cols}`; `tdetach {aid}`.
 * `OK attached` is sent when the replay arrives, so it always precedes the attachment's bytes.
 *
 * Flow control: the daemon never stops reading the worker. A client whose WebSocket holds more
 * than HIGH_WATER unsent bytes skips output (counted, and said on its screen when it catches up):
 * one slow viewer costs at most HIGH_WATER of memory and never slows the session or other viewers.
 */
import type { Request } from "../protocol/commands.ts";
import { PythondError } from "../protocol/errors.ts";
import { ATTACH, detachedFrom, resizedReply } from "../protocol/replies.ts";
import type { WorkerHeader } from "../protocol/worker.ts";
import type { WorkerLink } from "../worker/link.ts";
import type { AccessLog } from "../daemon/access-log.ts";
import type { ClientConn } from "../daemon/conn.ts";
import type { Registry } from "./registry.ts";

const HIGH_WATER = 256 * 1024;
const enc = new TextEncoder();
let nextAid = 1;

interface Attachment {
  aid: number;
  conn: ClientConn;
  session: string;
  readOnly: boolean;
  active: boolean;
  skipped: number;
  activated(): void;
}

/** The attachments through one worker link. */
class LinkTerminal {
  readonly attachments = new Map<number, Attachment>();

  constructor(
    readonly link: WorkerLink,
    readonly session: string,
    private readonly accessLog: AccessLog,
  ) {
    link.onTerminal = (h, body) => this.onFrame(h, body);
    link.onClosed((reason) => {
      const why = link.byeReason || (reason === "connection closed" ? "the session ended" : reason);
      for (const a of this.attachments.values()) {
        this.release(a);
        if (a.conn.open) a.conn.reply.text(detachedFrom(this.session, why, a.conn.codes));
        this.log(a, "detach");
        a.activated();
      }
    });
  }

  private onFrame(h: WorkerHeader, body: Uint8Array): void {
    if (h.op === "tdetach") {
      const a = this.attachments.get(Number(h.aid));
      if (!a) return;
      this.release(a);
      if (a.conn.open) a.conn.reply.text(ATTACH.detached);
      this.log(a, "detach");
      return;
    }
    if (h.aid !== undefined) {
      const a = this.attachments.get(Number(h.aid));
      if (!a || a.active) return;
      a.active = true;
      a.conn.attached = { session: this.session, input: (b) => this.input(a, b), detach: () => this.detach(a) };
      a.conn.reply.text(ATTACH.attached);
      if (body.length) a.conn.reply.binary(body);
      a.activated();
      return;
    }
    for (const a of this.attachments.values()) if (a.active) this.deliver(a, body);
  }

  private deliver(a: Attachment, body: Uint8Array): void {
    if (!a.conn.open) return;
    if (a.conn.reply.buffered() > HIGH_WATER) {
      if (a.skipped === 0) a.conn.waitDrain(() => this.caughtUp(a)); // say so even if all is quiet then
      a.skipped += body.length;
      return;
    }
    this.caughtUp(a);
    a.conn.reply.binary(body);
  }

  private caughtUp(a: Attachment): void {
    if (!a.skipped || !a.conn.open) return;
    if (a.conn.reply.buffered() > HIGH_WATER) return a.conn.waitDrain(() => this.caughtUp(a));
    const note = `\r\n[pythond: ${a.skipped} bytes of output skipped: this terminal fell behind; Ctrl-L redraws]\r\n`;
    a.conn.reply.binary(enc.encode(note));
    a.skipped = 0;
  }

  log(a: Attachment, event: "attach" | "detach"): void {
    const c = a.conn;
    this.accessLog.write(event, { conn_id: c.id, peer: c.peer, session: this.session, status: "ok", read_only: a.readOnly ? 1 : 0 });
  }

  private input(a: Attachment, bytes: Uint8Array): void {
    if (!a.readOnly) this.link.send({ op: "tin", aid: a.aid }, bytes);
  }

  begin(conn: ClientConn, readOnly: boolean): { a: Attachment; activated: Promise<void> } {
    const aid = nextAid++;
    let done!: () => void;
    const activated = new Promise<void>((resolve) => (done = resolve));
    const a: Attachment = { aid, conn, session: this.session, readOnly, active: false, skipped: 0, activated: done };
    this.attachments.set(aid, a);
    conn.onClose(() => this.detach(a) && this.log(a, "detach"));
    return { a, activated };
  }

  /** Ends an attachment from the client side (detach, or the connection went away). */
  detach(a: Attachment): boolean {
    if (!this.attachments.has(a.aid)) return false;
    this.release(a);
    this.link.send({ op: "detach", aid: a.aid });
    return true;
  }

  private release(a: Attachment): void {
    this.attachments.delete(a.aid);
    if (a.conn.attached?.session === this.session) a.conn.attached = undefined;
  }
}

const terminals = new WeakMap<WorkerLink, LinkTerminal>();

function terminalOf(link: WorkerLink, session: string, log: AccessLog): LinkTerminal {
  let t = terminals.get(link);
  if (!t) terminals.set(link, (t = new LinkTerminal(link, session, log)));
  return t;
}

function parseSize(rows: string | undefined, cols: string | undefined, synopsis: string): [number, number] | undefined {
  if (rows === undefined && cols === undefined) return undefined;
  const r = Number(rows);
  const c = Number(cols);
  const ok = (n: number) => Number.isInteger(n) && n > 0 && n < 10000;
  if (!ok(r) || !ok(c)) throw new PythondError("usage", `usage: ${synopsis} (rows and cols: whole numbers from 1 to 9999)`);
  return [r, c];
}

export async function attachSession(registry: Registry, log: AccessLog, conn: ClientConn, name: string, req: Request): Promise<"ok" | "error"> {
  if (conn.attached) throw new PythondError("usage", `already attached to '${conn.attached.session}' (send detach first)`);
  if (req.args.length === 2) throw new PythondError("usage", "usage: attach <name> [rows cols] [--read-only]");
  const size = parseSize(req.args[1], req.args[2], "attach <name> [rows cols] [--read-only]");
  const s = registry.get(name);
  const readOnly = req.opts["read-only"] === true;
  const t = terminalOf(s.link, name, log);
  const { a, activated } = t.begin(conn, readOnly);
  const fields = { aid: a.aid, ...(size && !readOnly ? { rows: size[0], cols: size[1] } : {}) };
  const h = await s.link.request("attach", fields);
  if (!h.ok) {
    t.detach(a);
    const none = String(h.error ?? "").includes("unknown op");
    const why = `session '${name}' has no terminal (its worker predates attach or could not open a PTY)`;
    throw new PythondError("usage", none ? `${why} -- start it again with: new ${name} --replace` : String(h.error));
  }
  await activated;
  const now = conn.attached as ClientConn["attached"]; // set meanwhile (TypeScript keeps the narrowing)
  if (now?.session !== name) return "error"; // the session ended before the replay came
  t.log(a, "attach");
  return "ok";
}

export function detachSession(log: AccessLog, conn: ClientConn): "ok" {
  const a = conn.attached;
  if (!a) throw new PythondError("usage", "not attached");
  a.detach();
  conn.attached = undefined;
  conn.reply.text(ATTACH.detached);
  log.write("detach", { conn_id: conn.id, peer: conn.peer, session: a.session, status: "ok" });
  return "ok";
}

export function resizeSession(registry: Registry, conn: ClientConn, name: string, req: Request): "ok" {
  const [rows, cols] = parseSize(req.args[1], req.args[2], "resize <name> <rows> <cols>")!;
  registry.get(name).link.send({ op: "resize", rows, cols });
  conn.reply.text(resizedReply(rows, cols));
  return "ok";
}
