/**
 * What a session command is aimed at, resolved once by the router (dispatch.ts) from the name
 * the caller wrote. One interface, three implementations:
 *
 *   local  src/sessions/target.ts  a session of this daemon (a worker process)
 *   proxy  src/proxy/target.ts     session `b` of the daemon behind proxy `a` (`pyctl connect a …`;
 *                                  `a` alone stands for `a/a`)
 *   node   src/fleet/ (next)       session `b` of node `a`, over the node's link to this hub
 *
 * The handler of a `session` command (src/protocol/commands.ts: target, via) calls one door:
 *
 *   run(conn, req)      run, wait: streamed to conn — pythond.1: `CELL <id>`, binary output as it
 *                       comes, then `OK` / `ERR …`; pythond.0.4: one reply at the end. Output is
 *                       acknowledged upstream (credits) only as conn takes it, so a slow client
 *                       slows the cell, not anyone's memory.
 *   request(conn, req)  every one-reply command (new, fire, fork, poll, int, kill, status, vars,
 *                       complete): exactly one text reply
 *   attach(conn, req)   attach, and resize of the attachment: `OK attached`, then binary frames
 *                       both ways (conn.attached takes the client's) until `OK detached` /
 *                       `ERR detached …`
 *
 * Each returns the access-log status; errors are thrown as PythondError (the router replies).
 * Replies reach the caller through conn.reply only, whichever room the target lives in.
 */
import type { Request } from "../protocol/commands.ts";
import type { ClientConn } from "./conn.ts";

export type Status = "ok" | "error";

export type TargetKind = "local" | "proxy" | "node";

export interface Target {
  readonly kind: TargetKind;
  /** The name as the caller wrote it: "work", "srv", "srv/work". */
  readonly name: string;
  /** The session's own name where it lives: "work". */
  readonly session: string;
  run(conn: ClientConn, req: Request): Promise<Status>;
  request(conn: ClientConn, req: Request): Promise<Status>;
  attach(conn: ClientConn, req: Request): Promise<Status>;
}

/** Splits `a/b` (via a, session b); a plain name has no via. Both parts are checked by the resolver. */
export function splitTargetName(name: string): { via?: string; session: string } {
  const slash = name.indexOf("/");
  if (slash < 0) return { session: name };
  return { via: name.slice(0, slash), session: name.slice(slash + 1) };
}

/**
 * A room that holds sessions behind names (proxies now, nodes next). The router asks each source
 * in turn for `via` (the `a` of `a/b`, or a bare name that may be a proxy's); the first that knows
 * it answers. A bare name nobody knows is a local session.
 */
export interface TargetSource {
  /** The target for `session` behind `via`, or undefined when `via` is not one of this source's names. */
  target(via: string, session: string, name: string): Target | undefined;
}
