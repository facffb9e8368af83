/**
 * Relaying session commands over virtual connections (links.ts): the command goes out on a
 * virtual connection of the local client's own subprotocol, its replies come back verbatim, and
 * what the local client takes is credited back. Used by proxies (a remote daemon's sessions), and
 * written for any far end that hands out virtual connections — a hub's node is the next one.
 *
 *   forward(conn, req, session, name)  one command for session `session` over there (`name`: what
 *                                      the local client called it, for hints); attach and the
 *                                      attachment's resize included
 */
import type { Request } from "../protocol/commands.ts";
import { PythondError } from "../protocol/errors.ts";
import { buildFrame } from "../protocol/frame.ts";
import { ATTACH, cellIdOf, endsDetached, isError } from "../protocol/replies.ts";
import type { Message } from "../client/connect.ts";
import type { ClientConn } from "../daemon/conn.ts";
import type { Status } from "../daemon/target.ts";
import type { VirtualClient } from "./links.ts";

/** Above this many bytes queued towards the local client, credit goes back only as it drains. */
const HIGH_WATER = 1 << 20;

/** Where virtual connections come from (a proxy's link; next a node's). */
export interface VirtualLinks {
  /** "host:port tls": how the far end is shown. */
  readonly label: string;
  take(protocol: string): Promise<VirtualClient>;
  give(protocol: string, c: VirtualClient): void;
}

export class SessionRelay {
  /** Local connections attached through this relay, and the virtual connection each one uses. */
  private attachLinks = new WeakMap<ClientConn, VirtualClient>();

  constructor(
    private readonly links: VirtualLinks,
    /** How errors name the far end: "remote 'srv'", "node 'web-1'". */
    private readonly far: string,
  ) {}

  /**
   * Relays one command (not attach) for the remote session `session`, and its replies; returns
   * the access-log status. `name`: how the local client named it (hints say it back).
   */
  async forward(conn: ClientConn, req: Request, session: string, name: string): Promise<Status> {
    const attachLink = this.attachLinks.get(conn);
    // `new` carries pysh's working directory, which means nothing on another machine.
    const frame = rebuild(req, session, req.cmd === "new" ? ["cwd"] : []);
    if (req.cmd === "resize" && attachLink && conn.attached?.session === name) {
      attachLink.send(frame); // the reply comes back on the attachment's relay
      return "ok";
    }
    if (req.cmd === "attach") return this.attach(conn, frame, name);
    const protocol = conn.replyProtocol;
    const streams = conn.streaming && (req.cmd === "run" || req.cmd === "wait");
    const link = await this.links.take(protocol);
    let cellId: string | undefined;
    try {
      link.send(frame);
      for (;;) {
        const m = await link.next();
        if (!conn.open) {
          link.close(); // the cell goes on there; its output stays retrievable by cell id
          return "error";
        }
        relay(conn, link, m);
        if ("binary" in m) continue;
        if (streams && cellIdOf(m.text) !== undefined) {
          cellId = cellIdOf(m.text);
          continue;
        }
        this.links.give(protocol, link);
        return isError(m.text) ? "error" : "ok";
      }
    } catch (e) {
      link.close();
      const hint = cellId ? ` (cell ${cellId} may still be running there; check with: pysh poll ${name} ${cellId})` : "";
      throw new PythondError(
        "daemon_unreachable",
        `${this.far} (${this.links.label}): connection lost during ${req.cmd}: ${PythondError.from(e).message}${hint}`,
      );
    }
  }

  /**
   * Attach through the proxy: after the remote's `OK attached`, binary frames flow both ways on a
   * link of their own; `detach` (the local handler calls conn.attached.detach) is passed on and
   * the remote's `OK detached` swallowed, since the local handler replies itself. When the remote
   * ends the attachment (`OK detached` from Ctrl-D, `ERR detached: …`), that is relayed.
   */
  private async attach(conn: ClientConn, text: string, name: string): Promise<Status> {
    if (conn.attached) throw new PythondError("usage", `already attached to '${conn.attached.session}' (send detach first)`);
    const protocol = conn.replyProtocol;
    const link = await this.links.take(protocol);
    link.send(text);
    let first: string;
    try {
      first = await link.nextText();
    } catch (e) {
      link.close();
      throw new PythondError("daemon_unreachable", `${this.far} (${this.links.label}): connection lost during attach: ${PythondError.from(e).message}`);
    }
    conn.reply.text(first);
    if (first !== ATTACH.attached) {
      this.links.give(protocol, link);
      return "error";
    }
    /** detaching: the local client sent `detach`; ended: the link is back in the pool (or gone). */
    const att = { detaching: false, ended: false };
    const mine = {
      session: name,
      input: (b: Uint8Array) => {
        if (!link.closed) link.send(b);
      },
      detach: () => {
        att.detaching = true;
        if (!link.closed) link.send("detach");
      },
    };
    conn.attached = mine;
    this.attachLinks.set(conn, link);
    conn.onClose(() => {
      if (!att.ended) link.close(); // the remote detaches when its client goes away
    });
    void this.relayAttached(conn, link, protocol, mine, att);
    return "ok";
  }

  private async relayAttached(
    conn: ClientConn,
    link: VirtualClient,
    protocol: string,
    mine: NonNullable<ClientConn["attached"]>,
    att: { detaching: boolean; ended: boolean },
  ): Promise<void> {
    const end = () => {
      att.ended = true;
      this.attachLinks.delete(conn);
      if (conn.attached === mine) conn.attached = undefined;
    };
    try {
      for (;;) {
        const m = await link.next();
        if ("text" in m && endsDetached(m.text, conn.codes)) {
          if (!att.detaching && conn.open) conn.reply.text(m.text);
          end();
          this.links.give(protocol, link);
          return;
        }
        // Once the client has detached (the local handler has said `OK detached`), what the remote
        // sent before it saw our `detach` is not for the client any more: its connection is back in
        // command mode. Dropped, and credited, so the remote is not held up.
        if (conn.open && !att.detaching) relay(conn, link, m);
        else link.took("binary" in m ? m.binary.length : Buffer.byteLength(m.text));
      }
    } catch (e) {
      const wasMine = conn.attached === mine;
      end();
      if (wasMine && conn.open && !att.detaching) {
        conn.reply.text(new PythondError("session_dead", `detached: ${this.far} (${this.links.label}): connection lost (${PythondError.from(e).message})`).toFrame(conn.codes));
      }
    }
  }
}

/** The frame of `req` for the remote: its session's own name, without the options in `drop`. */
function rebuild(req: Request, session: string, drop: string[]): string {
  const words = [session, ...req.args.slice(1)];
  for (const [k, v] of Object.entries(req.opts)) if (!drop.includes(k)) words.push(v === true ? `--${k}` : `--${k}=${v}`);
  return buildFrame(req.cmd, words, req.body === "" ? undefined : req.body);
}

/** Passes one reply on to the local client, and its bytes back as credit once the client has room. */
function relay(conn: ClientConn, link: VirtualClient, m: Message): void {
  let n: number;
  if ("binary" in m) {
    conn.reply.binary(m.binary);
    n = m.binary.length;
  } else {
    conn.reply.text(m.text);
    n = Buffer.byteLength(m.text);
  }
  if (conn.reply.buffered() < HIGH_WATER) link.took(n);
  else conn.waitDrain(() => link.took(n));
}

