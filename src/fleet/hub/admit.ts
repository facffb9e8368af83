/**
 * Node links before they are authenticated: the challenge, the one `hello` a node may send, and
 * the verdict (welcome, refused, or retry later). Runs on the TLS socket the listener accepted
 * (listen-tcp.ts hands it over after the request head asked for the node subprotocol).
 *
 * Why retry-after: after a hub restart every node dials back at once. Each link in this stage
 * costs a TLS handshake already paid and a pending verdict; past MAX_PENDING of them the hub
 * answers `retry` with a time spread over how long the backlog takes at the admission rate, so the
 * herd arrives spread out instead of in the same second (Teleport #6889) and no node is dropped.
 */
import type { Socket } from "bun";
import { NODE_PROTOCOL, NODE_SUBPROTOCOL, parseHello, type HubAnswer, type NodeHello, type RefusalReason } from "../../protocol/fleet.ts";
import { fingerprintOfPem } from "../../tls/pem.ts";
import { newNonce, verifyProof } from "../proof.ts";
import { RawWsChannel } from "./ws-server.ts";
import { tokenRefusalMessage, type TokenRecord } from "./tokens.ts";
import type { FleetHub } from "./hub.ts";

const HELLO_MS = 10_000;
/** Links past the head and before their verdict, at most. */
const MAX_PENDING = Number(process.env.PYTHOND_NODE_MAX_PENDING || 512);
/** Verdicts per second the retry-after times are computed for. */
const ADMIT_RATE = Number(process.env.PYTHOND_NODE_ADMIT_RATE || 1000);
const MAX_HELLO = 16 * 1024;

export interface NodeSocketInfo {
  connId: number;
  peer: string;
  source: string;
  tls: boolean;
  /** "AA:BB:…" of the TLS client certificate, or null. */
  clientCert: string | null;
}

/** What the listener routes a handed-over socket's events to. */
export interface AdoptedSocket {
  data(d: Uint8Array): void;
  drain(): void;
  close(): void;
}

export class Admission {
  pending = 0;
  /** The time (ms) the backlog of retried nodes is scheduled up to. */
  private scheduledUntil = 0;

  /** null: go ahead; else how long the node should wait before dialing again. */
  retryAfter(now = Date.now()): number | null {
    if (this.pending < MAX_PENDING) return null;
    const slot = Math.max(now, this.scheduledUntil) + 1000 / ADMIT_RATE;
    this.scheduledUntil = slot;
    // Jitter within one second of the slot: two hubs' schedules never line nodes up exactly.
    return Math.round(slot - now + Math.random() * 1000);
  }
}

/**
 * Takes over a socket whose request head asked for the node subprotocol: answers the upgrade,
 * sends the challenge, waits for the hello, and gives the verdict.
 */
export function adoptNodeSocket(
  hub: FleetHub,
  socket: Socket<unknown>,
  key: string,
  early: Uint8Array[],
  info: NodeSocketInfo,
): AdoptedSocket {
  const ws = new RawWsChannel(socket, MAX_HELLO);
  const nonce = newNonce();
  let phase: "hello" | "judging" | "up" | "done" = "hello";
  hub.admission.pending++;
  const leave = () => {
    if (phase === "hello" || phase === "judging") hub.admission.pending--;
  };
  const timer = setTimeout(() => {
    if (phase !== "hello") return;
    hub.logAuth(info, "error", "hello_timeout");
    leave();
    phase = "done";
    ws.closeWith(1008, "no hello");
  }, HELLO_MS);
  const refuse = (reason: RefusalReason, message: string, id?: string) => {
    hub.logAuth(info, "error", reason, id);
    const answer: HubAnswer = { t: "refused", reason, message };
    ws.send(JSON.stringify(answer));
    ws.closeWith(1008, reason);
  };
  ws.onMessage((m) => {
      if (phase !== "hello") {
        // Before the verdict nothing else is accepted (after it, the link layer has the socket).
        phase = "done";
        hub.logAuth(info, "error", "message_before_auth");
        return ws.closeWith(1008, "one hello only");
      }
      phase = "judging";
      clearTimeout(timer);
      let hello: NodeHello;
      try {
        if (typeof m !== "string") throw new Error("bad_hello");
        hello = parseHello(m);
      } catch (e) {
        leave();
        phase = "done";
        const reason = (e as Error).message as RefusalReason;
        return refuse(reason, reason === "bad_version" ? `this hub speaks node protocol ${NODE_PROTOCOL}` : "malformed hello");
      }
      const wait = hub.admission.retryAfter();
      if (wait !== null && !hub.isOnline(hello.id)) {
        leave();
        phase = "done";
        hub.logAuth(info, "error", "busy", hello.id, { retry_after_ms: String(wait) });
        const answer: HubAnswer = { t: "retry", after_ms: wait, reason: "hub busy" };
        ws.send(JSON.stringify(answer));
        return ws.closeWith(1013, "retry later");
      }
      void judgeWithPenalty(hub, ws, hello, nonce, info).then(
        (verdict) => {
          leave();
          if (ws.open === false) return void (phase = "done");
          if ("reason" in verdict) {
            phase = "done";
            return refuse(verdict.reason, verdict.message, hello.id);
          }
          phase = "up";
          hub.welcome(ws, hello, info, verdict.enrolled, verdict.tokenLabels);
        },
        () => {
          leave();
          phase = "done";
          refuse("bad_hello", "internal error judging the hello", hello.id);
        },
      );
  });
  ws.onClose(() => {
    clearTimeout(timer);
    leave();
    if (phase === "hello") hub.logAuth(info, "error", "closed_before_hello");
    if (phase !== "up") phase = "done";
  });
  ws.accept(key, NODE_SUBPROTOCOL, early, JSON.stringify({ t: "challenge", nonce, v: NODE_PROTOCOL }));
  return { data: (d) => ws.feed(d), drain: () => ws.drain(), close: () => ws.gone() };
}

/**
 * The listener's per-source penalty applies to nodes too: a source that keeps presenting bad
 * tokens or keys gets its answers later and later, then none (src/ingress/auth.ts).
 */
async function judgeWithPenalty(hub: FleetHub, ws: RawWsChannel, hello: NodeHello, nonce: string, info: NodeSocketInfo): Promise<Verdict> {
  const admission = hub.penalties.admit(info.source);
  if (admission.refused) return { reason: "too_many_failures", message: "too many failed attempts from this address; retry later" };
  const v = await judge(hub, ws, hello, nonce, info);
  if ("reason" in v) {
    const pending = hub.penalties.failed(info.source);
    if (admission.failureDelayMs) await Bun.sleep(admission.failureDelayMs);
    pending.done();
  }
  return v;
}

type Verdict = { enrolled: boolean; tokenLabels: Record<string, string> } | { reason: RefusalReason; message: string };

/**
 * Who the link is: the key (TLS client certificate, or the proof on a plain link), then the id's
 * binding: a bound id needs that same key; an unbound one needs a valid join token and is bound
 * to this key.
 */
async function judge(hub: FleetHub, ws: RawWsChannel, hello: NodeHello, nonce: string, info: NodeSocketInfo): Promise<Verdict> {
  let fp = info.clientCert;
  if (!info.tls) {
    if (!hello.cert || !hello.sig) return { reason: "client_cert_missing", message: "a node on a plain link must send its certificate and proof" };
    if (!(await verifyProof(hello.cert, nonce, hello.id, hello.sig))) {
      return { reason: "bad_proof", message: "the proof of the node's key does not verify" };
    }
    fp = fingerprintOfPem(hello.cert);
  }
  if (!fp) {
    return { reason: "client_cert_missing", message: "the node presented no client certificate (a node always does: is this a pythond node?)" };
  }
  const bound = hub.bindings.get(hello.id);
  if (bound) {
    if (bound.fingerprint !== fp) {
      hub.say(`node '${hello.id}': refused a link from ${info.peer} with another key (${fp}; bound to ${bound.fingerprint})`);
      return {
        reason: "id_bound_to_other_key",
        message:
          `node id '${hello.id}' is already enrolled on this hub with another key (hub has ${bound.fingerprint}, ` +
          `this node presents ${fp}); if this machine was reinstalled, run on the hub: pyctl node forget ${hello.id}`,
      };
    }
    return { enrolled: false, tokenLabels: bound.labels };
  }
  const r: TokenRecord | RefusalReason = await hub.tokens.redeem(hello.token, true);
  if (typeof r === "string") return { reason: r, message: tokenRefusalMessage(r) };
  if (ws.open === false) return { reason: "bad_hello", message: "gone" };
  // Two links enrolling the same new id at once: the first binds, the second is judged against it.
  const now = hub.bindings.get(hello.id);
  if (now && now.fingerprint !== fp) return { reason: "id_bound_to_other_key", message: `node id '${hello.id}' was just enrolled with another key` };
  hub.bindings.bind({ id: hello.id, fingerprint: fp, enrolled: new Date().toISOString(), token_id: r.id, labels: r.labels });
  return { enrolled: true, tokenLabels: r.labels };
}
