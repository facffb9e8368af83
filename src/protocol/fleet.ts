/**
 * The fleet's part of the wire contract: how a node (`pythond join`) and a hub talk before the
 * multiplexer runs, and the names that travel in it.
 *
 * A node dials the hub's ordinary listener (`--listen`, TLS) and asks for the WebSocket
 * subprotocol NODE_SUBPROTOCOL; that alone tells the listener this is a node link (any URL path is
 * accepted: the seed's `ws://hub:8765/ws` works). The node presents its own certificate as the TLS
 * client certificate (mTLS). Once the WebSocket is up, the hub sends `challenge` (a fresh nonce).
 * Before authentication the hub accepts exactly one message from the node: `hello` (a JSON text
 * frame); anything else closes the link. Its answer is one of `welcome` (the link then carries the
 * multiplexer), `refused` (close 1008) or `retry` (the hub is busy: come back after `after_ms`).
 * On a plain `ws://` link (loopback only) there is no TLS client certificate: the hello then
 * carries the node's certificate and its signature of the nonce (src/fleet/proof.ts).
 *
 * Authentication: a node id the hub has never seen needs a valid join token in `hello`; the hub
 * then binds the id to the fingerprint of the client certificate presented on this connection.
 * An id already bound is accepted only with that same certificate, and the token is ignored, so a
 * leaked token cannot take over an enrolled node. Bump NODE_PROTOCOL when these messages change.
 */
import { PythondError } from "./errors.ts";

export const NODE_SUBPROTOCOL = "pythond-node.1";
export const NODE_PROTOCOL = 1;
/** Largest message on a node link, either way: a frame as large as a client may send, and its header. */
export const NODE_LINK_MAX_MESSAGE = 64 * 1024 * 1024 + 8192;

/** The one message a node may send before it is authenticated. */
export interface NodeHello {
  t: "hello";
  v: number;
  id: string;
  /** Join token: needed only while the id is not bound on the hub. */
  token?: string;
  labels: Record<string, string>;
  hostname: string;
  os: string;
  arch: string;
  version: string;
  /** Seconds between heartbeats the node wants (the hub's own setting wins when larger). */
  heartbeat: number;
  /** The hub instance this node last saw (resume state is kept only for the same instance). */
  hub_instance?: string;
  /** Plain links only: the node's certificate (PEM) and its signature of the challenge. */
  cert?: string;
  sig?: string;
}

/** The hub's first message on a node link. */
export interface HubChallenge {
  t: "challenge";
  nonce: string;
  v: number;
}

export type HubAnswer =
  | { t: "welcome"; id: string; hub_instance: string; heartbeat: number; enrolled: boolean }
  | { t: "refused"; reason: RefusalReason; message: string }
  | { t: "retry"; after_ms: number; reason: string };

/** Why a hub refuses a node; stable strings (access log `reason=`). */
export type RefusalReason =
  | "bad_hello"
  | "bad_version"
  | "invalid_id"
  | "token_missing"
  | "token_unknown"
  | "token_expired"
  | "token_revoked"
  | "token_used_up"
  | "client_cert_missing"
  | "bad_proof"
  | "id_bound_to_other_key"
  | "too_many_failures";

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const LABEL_KEY_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const LABEL_VALUE_RE = /^[A-Za-z0-9._:@+=-]{0,128}$/;
export const MAX_LABELS = 32;

/** Why a name is refused, for the message: which character class broke it. */
function what(s: string): string {
  if (s === "") return "it is empty";
  if (/[\x00-\x1f\x7f]/.test(s)) return "it has control characters";
  if (/\s/.test(s)) return "it has spaces";
  if (s.includes("/")) return "it has a slash";
  if (s.length > 63) return "it is longer than 63 characters";
  return "use letters, digits, '.', '_' and '-', starting with a letter or digit";
}

/** Node ids: 1-63 of [A-Za-z0-9._-], first a letter or digit. They name nodes in `node/session`. */
export function isValidNodeId(id: string): boolean {
  return ID_RE.test(id);
}

export function checkNodeId(id: string): string {
  if (!isValidNodeId(id)) {
    throw new PythondError("invalid_name", `invalid node id ${JSON.stringify(id)}: ${what(id)} (letters, digits, '.', '_', '-'; at most 63)`);
  }
  return id;
}

/** `k=v` (v may be empty); keys as node ids, values without spaces, slashes or control characters. */
export function parseLabel(spec: string): [string, string] {
  const eq = spec.indexOf("=");
  const key = eq < 0 ? spec : spec.slice(0, eq);
  const value = eq < 0 ? "" : spec.slice(eq + 1);
  if (eq < 0) throw new PythondError("usage", `invalid label ${JSON.stringify(spec)}: write it as key=value`);
  if (!LABEL_KEY_RE.test(key)) throw new PythondError("usage", `invalid label key ${JSON.stringify(key)}: ${what(key)}`);
  if (!LABEL_VALUE_RE.test(value)) {
    const why = /[\x00-\x1f\x7f]/.test(value) ? "it has control characters" : /\s/.test(value) ? "it has spaces" : value.includes("/") ? "it has a slash" : "letters, digits and . _ : @ + = - only, at most 128";
    throw new PythondError("usage", `invalid label value ${JSON.stringify(value)} for ${key}: ${why}`);
  }
  return [key, value];
}

export function parseLabels(specs: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const s of specs) {
    const [k, v] = parseLabel(s);
    out[k] = v;
  }
  if (Object.keys(out).length > MAX_LABELS) throw new PythondError("usage", `at most ${MAX_LABELS} labels`);
  return out;
}

/** Labels as `k=v,k=v` (sorted), for `nodes` and the access log. */
export function formatLabels(labels: Record<string, string>): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(",");
}

/** Validates a hello from the wire; throws with the refusal reason as the error message. */
export function parseHello(text: string): NodeHello {
  let h: NodeHello;
  try {
    h = JSON.parse(text) as NodeHello;
  } catch {
    throw new Error("bad_hello");
  }
  if (!h || typeof h !== "object" || h.t !== "hello" || typeof h.id !== "string") throw new Error("bad_hello");
  if (h.v !== NODE_PROTOCOL) throw new Error("bad_version");
  if (!isValidNodeId(h.id)) throw new Error("invalid_id");
  if (h.token !== undefined && (typeof h.token !== "string" || h.token.length > 256)) throw new Error("bad_hello");
  const labels: Record<string, string> = {};
  if (h.labels && typeof h.labels === "object") {
    for (const [k, v] of Object.entries(h.labels).slice(0, MAX_LABELS)) {
      if (typeof v === "string" && LABEL_KEY_RE.test(k) && LABEL_VALUE_RE.test(v)) labels[k] = v;
    }
  }
  const str = (v: unknown, max = 128) => (typeof v === "string" ? v.replace(/[^\x20-\x7e]/g, "?").slice(0, max) : "");
  const hb = Number(h.heartbeat);
  return {
    t: "hello",
    v: NODE_PROTOCOL,
    id: h.id,
    token: h.token,
    labels,
    hostname: str(h.hostname),
    os: str(h.os, 32),
    arch: str(h.arch, 32),
    version: str(h.version, 32),
    heartbeat: Number.isFinite(hb) && hb > 0 ? hb : 10,
    hub_instance: typeof h.hub_instance === "string" ? str(h.hub_instance, 64) : undefined,
    cert: typeof h.cert === "string" && h.cert.length < 8192 ? h.cert : undefined,
    sig: typeof h.sig === "string" && h.sig.length < 512 ? h.sig : undefined,
  };
}
