/**
 * Versions of the two contracts this binary speaks.
 *
 * Bump PROTOCOL_VERSION when anything a client can see changes (a command, a reply, a frame type);
 * bump WORKER_PROTOCOL (in src/worker/py/_pythond/protocol.py, read by src/protocol/worker.ts) when
 * the daemon <-> worker framing or messages change, so that a daemon adopting workers started by
 * another build can tell whether it can talk to them.
 */
export const VERSION = "0.5.0";
// 2: connect/disconnect, restart, attach --read-only, hello.listen
// 3: pythond.1+codes, pythond.link.1 (proxy links), `a/b` session names, `run <proxy> <session>`
export const PROTOCOL_VERSION = 3;
/** Subprotocol of the original pythond 0.4: single reply per `run`, no streaming. */
export const SUBPROTOCOL_LEGACY = "pythond.0.4";
/** Our subprotocol: `run` streams (CELL, binary output frames, then a final text frame). */
export const SUBPROTOCOL = "pythond.1";
/** Our subprotocol with error codes: as pythond.1, but every `ERR` reply is `ERR <code>: <message>`. */
export const SUBPROTOCOL_CODES = "pythond.1+codes";
/**
 * Daemon to daemon (a proxy's link to its remote): the multiplexer of src/link/mux.ts, binary frames
 * only; each stream on it is one virtual client connection (src/proxy/serve.ts).
 */
export const LINK_SUBPROTOCOL = "pythond.link.1";
/** What our clients offer: codes when the daemon has them, else plain pythond.1 (an older daemon). */
export const CLIENT_OFFER = [SUBPROTOCOL_CODES, SUBPROTOCOL];
/** What the daemon accepts, in its order of preference. */
export const SUBPROTOCOLS = [SUBPROTOCOL_CODES, SUBPROTOCOL, SUBPROTOCOL_LEGACY, LINK_SUBPROTOCOL] as const;

/** The subprotocol chosen from a client's offer ("" when it offers none we speak). */
export function chooseSubprotocol(offered: readonly string[]): string {
  for (const p of SUBPROTOCOLS) if (offered.includes(p)) return p;
  return "";
}
