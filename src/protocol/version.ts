/**
 * Versions of the two contracts this binary speaks.
 *
 * Bump PROTOCOL_VERSION when anything a client can see changes (a command, a reply, a frame type);
 * bump WORKER_PROTOCOL when the daemon <-> worker framing or messages change, so that a daemon
 * adopting workers started by another build can tell whether it can talk to them.
 */
export const VERSION = "0.5.0";
export const PROTOCOL_VERSION = 2; // 2: connect/disconnect, restart, attach --read-only, hello.listen
/** Subprotocol of the original pythond 0.4: single reply per `run`, no streaming. */
export const SUBPROTOCOL_LEGACY = "pythond.0.4";
/** Our subprotocol: `run` streams (CELL, binary output frames, then a final text frame). */
export const SUBPROTOCOL = "pythond.1";
export const WORKER_PROTOCOL = 1;
