/**
 * Reply frames of the client protocol: every sender builds them here and every client parses
 * them here (daemon handlers, sessions, proxies, pysh, pyctl, attach). REFERENCE "Replies".
 *
 *   OK [detail]                       success of a one-reply command (`OK killed work`)
 *   CELL <id>                         pythond.1: the cell started (then binary output frames)
 *   ERR <message>                     failure (pythond.0.4, pythond.1)
 *   ERR <code>: <message>             failure, pythond.1+codes (ErrorCode of errors.ts)
 *   ERR execution failed\n<detail>    the cell raised (code execution_failed)
 *   other text                        data (JSON of status/vars/poll, `ls` lines, run output
 *                                     for pythond.0.4)
 *
 * Attach (after `attach`): `OK attached`, binary frames both ways, then `OK detached` (the reply
 * to `detach`, or Ctrl-D at the REPL) or `ERR detached from session '<name>': <why>`;
 * `resize` answers `OK resized <rows>x<cols>`. The detach key (Ctrl-], 0x1d) is the client's.
 */
import { isErrorCode, PythondError, type ErrorCode } from "./errors.ts";

export const OK = "OK";
const CELL_PREFIX = "CELL ";
const ERR_PREFIX = "ERR ";

export const ATTACH = { attached: "OK attached", detached: "OK detached", detachKey: 0x1d } as const;

export function okReply(detail?: string): string {
  return detail === undefined ? OK : `${OK} ${detail}`;
}

export function cellReply(cellId: string): string {
  return CELL_PREFIX + cellId;
}

/** `ERR …` for an error; with its code for clients that asked for codes. */
export function errReply(err: PythondError, codes: boolean): string {
  return err.toFrame(codes);
}

/** A cell that raised: `ERR execution failed\n<detail>`. */
export function executionFailed(detail: string, codes: boolean): string {
  return errReply(new PythondError("execution_failed", `execution failed\n${detail}`), codes);
}

/** The attachment ended from the daemon's side (the session ended, the link to it broke). */
export function detachedFrom(session: string, why: string, codes: boolean): string {
  return errReply(new PythondError("session_dead", `detached from session '${session}': ${why}`), codes);
}

export function resizedReply(rows: number, cols: number): string {
  return okReply(`resized ${rows}x${cols}`);
}

export function isError(text: string): boolean {
  return text.startsWith(ERR_PREFIX);
}

/** The cell id of a `CELL <id>` frame, else undefined. */
export function cellIdOf(text: string): string | undefined {
  return text.startsWith(CELL_PREFIX) ? text.slice(CELL_PREFIX.length) : undefined;
}

/**
 * An `ERR …` reply as an error. `codes`: the connection speaks pythond.1+codes, so the code is
 * read from the frame; otherwise (or when the frame has none) `fallback` is the code.
 */
export function parseError(text: string, codes: boolean, fallback: ErrorCode = "execution_failed"): PythondError {
  const rest = text.startsWith(ERR_PREFIX) ? text.slice(ERR_PREFIX.length) : text;
  if (codes) {
    const colon = rest.indexOf(": ");
    const code = colon > 0 ? rest.slice(0, colon) : "";
    if (isErrorCode(code)) return new PythondError(code, rest.slice(colon + 2));
  }
  return new PythondError(fallback, rest);
}

/** The frame a person sees: `ERR <message>`, without the code (pysh and pyctl print this). */
export function plainError(text: string, codes: boolean): string {
  return parseError(text, codes).toFrame(false);
}

/** Whether a frame ends an attachment: `OK detached`, or `ERR detached…` (either form). */
export function endsDetached(text: string, codes: boolean): boolean {
  return text === ATTACH.detached || (isError(text) && parseError(text, codes).message.startsWith("detached"));
}

/**
 * The one text frame a TCP/TLS client gets when the listener refuses it (then close 1008), in
 * every subprotocol the same: terse on purpose (REFERENCE), the client explains (client/remote.ts).
 */
export const AUTH_REJECTION = {
  plain: "ERR auth failed",
  certRequired: "ERR auth failed: client certificate required",
  certUntrusted: "ERR auth failed: client certificate not trusted",
  tooMany: "ERR auth failed: too many failed attempts from this address; retry later",
} as const;
