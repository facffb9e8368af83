/**
 * One dial from a node to its hub: TLS with the hub checked against the fingerprint the node was
 * given (never the system CA store), the node's own certificate presented (mTLS), the challenge,
 * the one hello, and the hub's answer. Returns the open channel after `welcome`; the caller puts
 * the multiplexer on it.
 *
 * Checking a hub by fingerprint: the first time, one handshake that verifies nothing fetches the
 * hub's certificate, its fingerprint is compared with the expected one (a clear error naming both
 * when they differ), and that certificate is kept (~/.pythond/node/hub.pem, or given with --pin).
 * Every link then compares the certificate the hub presents with it exactly (src/link/ws-connect.ts:
 * our own WebSocket client on Bun.connect, for the speed of bulk transfers), never a CA store.
 */
import { readFileSync } from "node:fs";
import { arch, hostname, platform } from "node:os";
import { PythondError } from "../../protocol/errors.ts";
import { connectFailure, connectWebSocket, type WsConnectOptions } from "../../link/ws-connect.ts";
import type { SocketWsChannel } from "../../link/ws-socket.ts";
import { NODE_LINK_MAX_MESSAGE, NODE_PROTOCOL, NODE_SUBPROTOCOL, type HubAnswer, type NodeHello } from "../../protocol/fleet.ts";
import { VERSION } from "../../protocol/version.ts";
import { fingerprintOfPem, normaliseFingerprint } from "../../tls/pem.ts";
import { derToPem } from "../../tls/pem.ts";
import { signNonce } from "../proof.ts";
import type { HubUrl } from "./hub-url.ts";
import { keptHubPem, writeHubRecord, type NodeKey } from "./identity.ts";

export interface DialOptions {
  url: HubUrl;
  id: string;
  key: NodeKey;
  token?: string;
  labels: Record<string, string>;
  heartbeat: number;
  /** "AA:BB:…" the hub must present (wss only). */
  fingerprint?: string;
  /** The hub's certificate, when given with --pin or kept from before. */
  hubPem?: string;
  hubInstance?: string;
  timeoutMs?: number;
}

/** A refusal: the hub said no (fatal on a first join), or asked us to come back later. */
export class HubRefusal extends PythondError {
  constructor(
    readonly answer: HubAnswer & { t: "refused" | "retry" },
    message: string,
  ) {
    super("auth_failed", message);
  }
}

/** The hub's certificate from a handshake that verifies nothing and sends nothing. */
export function fetchHubCertificate(url: HubUrl, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (v: string | Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (typeof v === "string") resolve(v);
      else reject(v);
    };
    const timer = setTimeout(() => finish(new PythondError("timeout", `no TLS answer from ${url.where} within ${timeoutMs / 1000}s`)), timeoutMs);
    Bun.connect({
      hostname: url.host,
      port: url.port,
      tls: { rejectUnauthorized: false },
      socket: {
        handshake(s, ok) {
          const raw = ok ? s.getPeerCertificate()?.raw : undefined;
          s.end();
          if (raw && raw.length) finish(derToPem(new Uint8Array(raw)));
          else finish(new PythondError("daemon_unreachable", `${url.where} does not speak TLS (a plain listener? then use ws:// on loopback)`));
        },
        data() {},
        close: () => finish(new PythondError("daemon_unreachable", `${url.where} closed the connection during the TLS handshake`)),
        error: (_s, e) => finish(new PythondError("daemon_unreachable", `cannot reach the hub at ${url.where}: ${e.message}`)),
        connectError: (_s, e) => finish(connectFailure(`the hub at ${url.where}`, e)),
      },
    }).catch((e) => finish(connectFailure(`the hub at ${url.where}`, e as Error)));
  });
}

export function mismatchMessage(url: HubUrl, expected: string, got: string): string {
  return (
    `hub certificate mismatch for ${url.where}: it presents ${got}, expected ${expected} -- ` +
    `check the fingerprint with \`pyctl cert\` on the hub; do not join if they differ`
  );
}

/** The hub certificate to trust for this dial: checked against the fingerprint, kept on disk. */
export async function hubCertificate(o: DialOptions): Promise<string> {
  if (o.hubPem) {
    const fp = fingerprintOfPem(o.hubPem);
    if (o.fingerprint && fp !== o.fingerprint) {
      throw new PythondError("usage", `--pin and --fingerprint disagree: the pinned certificate is ${fp}, --fingerprint says ${o.fingerprint}`);
    }
    return o.hubPem;
  }
  if (!o.fingerprint) {
    throw new PythondError("usage", `wss:// needs the hub's fingerprint (--fingerprint FP, printed by pyctl join-token) or its certificate (--pin cert.pem)`);
  }
  const kept = keptHubPem(o.fingerprint);
  if (kept) return kept;
  const pem = await fetchHubCertificate(o.url, o.timeoutMs ?? 10_000);
  const got = fingerprintOfPem(pem);
  if (got !== o.fingerprint) throw new PythondError("auth_failed", mismatchMessage(o.url, o.fingerprint, got));
  writeHubRecord({ url: o.url.href, fingerprint: o.fingerprint }, pem);
  return pem;
}

export function readPinFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new PythondError("usage", `--pin ${path}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message}`);
  }
  fingerprintOfPem(text); // throws on a file without a certificate
  return text;
}

export { normaliseFingerprint };

/**
 * Dials once: connect, challenge, hello, answer. Resolves with the open channel and the welcome;
 * rejects with HubRefusal (refused / retry) or a PythondError saying what went wrong.
 */
export async function dialHub(o: DialOptions): Promise<{ channel: SocketWsChannel; welcome: HubAnswer & { t: "welcome" } }> {
  const timeoutMs = o.timeoutMs ?? 10_000;
  const deadline = Date.now() + timeoutMs;
  let tls: WsConnectOptions["tls"];
  if (o.url.tls) {
    const want = fingerprintOfPem(await hubCertificate(o));
    tls = {
      cert: o.key.certPem,
      key: o.key.keyPem,
      checkPeer: (fp) => (fp === want ? undefined : new PythondError("auth_failed", mismatchMessage(o.url, want, fp))),
    };
  }
  const channel = await connectWebSocket({
    host: o.url.host,
    port: o.url.port,
    path: o.url.path,
    protocol: NODE_SUBPROTOCOL,
    name: `the hub at ${o.url.where}`,
    timeoutMs: Math.max(1, deadline - Date.now()),
    maxMessage: NODE_LINK_MAX_MESSAGE,
    tls,
  }).catch((e: PythondError) => {
    if (e.code === "timeout") throw new PythondError("timeout", `timed out after ${timeoutMs / 1000}s waiting for the hub at ${o.url.where} (the connection)`);
    throw e;
  });
  const texts: string[] = [];
  let wake: (() => void) | undefined;
  let closed: string | undefined;
  let handedOver = false;
  let textsSeen = 0;
  channel.onMessage((m) => {
    if (typeof m === "string") {
      texts.push(m);
      // The second text is the hub's answer. What follows is the multiplexer's, and may have come
      // in the same socket read (a resumed stream's frames right after a welcome): kept for it.
      if (++textsSeen === 2) channel.keepForNext();
    }
    wake?.();
  });
  channel.onClose((reason) => {
    if (handedOver) return;
    closed = reason;
    wake?.();
  });
  const next = async (what: string): Promise<string> => {
    for (;;) {
      if (texts.length) return texts.shift()!;
      if (closed !== undefined) throw new PythondError("daemon_unreachable", `the hub at ${o.url.where} closed the link before ${what} (${closed})`);
      const left = deadline - Date.now();
      if (left <= 0) {
        channel.close();
        throw new PythondError("timeout", `timed out after ${timeoutMs / 1000}s waiting for the hub at ${o.url.where} (${what})`);
      }
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        wake = () => {
          clearTimeout(t);
          r();
        };
      });
      wake = undefined;
    }
  };
  const challenge = JSON.parse(await next("its challenge")) as { t: string; nonce?: string };
  if (challenge.t !== "challenge" || typeof challenge.nonce !== "string") {
    channel.close();
    throw new PythondError("bad_frame", `the hub at ${o.url.where} did not start the node handshake (not a pythond hub?)`);
  }
  const hello: NodeHello = {
    t: "hello",
    v: NODE_PROTOCOL,
    id: o.id,
    ...(o.token ? { token: o.token } : {}),
    labels: o.labels,
    hostname: hostname(),
    os: platform(),
    arch: arch(),
    version: VERSION,
    heartbeat: o.heartbeat,
    ...(o.hubInstance ? { hub_instance: o.hubInstance } : {}),
  };
  if (!o.url.tls) {
    hello.cert = o.key.certPem;
    hello.sig = await signNonce(o.key.keyPem, challenge.nonce, o.id);
  }
  channel.send(JSON.stringify(hello));
  const answer = JSON.parse(await next("its answer to the hello")) as HubAnswer;
  if (answer.t === "welcome") {
    handedOver = true;
    return { channel, welcome: answer };
  }
  channel.close();
  if (answer.t === "retry") throw new HubRefusal(answer, `the hub at ${o.url.where} is busy; coming back in ${(answer.after_ms / 1000).toFixed(1)}s`);
  if (answer.t === "refused") throw new HubRefusal(answer, `the hub at ${o.url.where} refused node '${o.id}': ${answer.message}`);
  throw new PythondError("bad_frame", `unexpected answer from the hub at ${o.url.where}`);
}
