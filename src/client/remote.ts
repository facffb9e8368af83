/**
 * Connecting to a daemon over TCP: a remote one (PYTHOND_HOST, PYTHOND_TOKEN, PYTHOND_TLS), the
 * local one in local TCP mode (daemon.json), and the links of remote proxies (src/proxy/proxy.ts).
 *
 * TLS is verified by pinning, as ssh's known_hosts: the server certificate must be one of those
 * stored by `pyctl pin` (compared by SHA-256 fingerprint; host names play no part). This machine's
 * own certificate (~/.pythond/tls/cert.pem) is presented as the client certificate when it exists.
 *
 * Every way a connection can fail ends in one PythondError whose message says what happened and
 * what to do, because "TLS handshake failed" alone sends people to the wrong place. Bun's own
 * messages are misleading for pinning (a rejected pin reads as a hostname mismatch), so when the
 * certificate is the problem we look at what the server presents with a second, unverified
 * handshake, which only ever feeds the error message.
 *
 * Loaded lazily (pysh's local hot path never imports it); the TLS store is loaded only for TLS.
 */
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { hostPort, isLoopback, splitHostPort } from "../protocol/endpoint.ts";
import { PythondError } from "../protocol/errors.ts";
import { AUTH_REJECTION } from "../protocol/replies.ts";
import { runtimeDir, socketPath } from "../paths.ts";

/** Where and how to connect; the token travels in `Authorization: Bearer`. */
export interface RemoteEndpoint {
  host: string;
  port: number;
  tls: boolean;
  token: string;
}

/** True when this platform (or PYTHOND_LOCAL_TCP=1) talks to the local daemon over loopback TCP. */
export function localTcpMode(): boolean {
  return process.platform === "win32" || process.env.PYTHOND_LOCAL_TCP === "1";
}

/** "127.0.0.1:7399 tls" / "127.0.0.1:7399": how endpoints are shown (`ls`, `OK connected`). */
export function endpointLabel(ep: { host: string; port: number; tls: boolean }): string {
  return `${hostPort(ep.host, ep.port)}${ep.tls ? " tls" : ""}`;
}

/** Parses HOST:PORT, [V6]:PORT or HOST (port from PYTHOND_PORT, else 7984) of a daemon to reach. */
export function parseHostPort(spec: string, what = "PYTHOND_HOST"): { host: string; port: number } {
  const hp = splitHostPort(spec, what);
  if (!hp.host || hp.port === 0) throw new PythondError("usage", `${what} takes HOST:PORT (got ${JSON.stringify(spec)})`);
  return hp;
}

/**
 * Whether to use TLS: asked for (`--tls`, PYTHOND_TLS=1), or implied by a non-loopback host (the
 * daemon never offers plain TCP there, and a token must not cross a network in clear text).
 */
export function decideTls(host: string, asked: string | boolean | undefined): boolean {
  if (asked === true || asked === "1") return true;
  if (isLoopback(host)) return false;
  if (asked === "0") {
    throw new PythondError("usage", `refusing to send the token in clear text to ${host} (PYTHOND_TLS=0): plain TCP is for loopback only`);
  }
  return true;
}

/** The endpoint chosen by the environment, or null for the local Unix socket. */
export function remoteFromEnv(): RemoteEndpoint | null {
  const hostEnv = process.env.PYTHOND_HOST;
  if (hostEnv) {
    const { host, port } = parseHostPort(hostEnv);
    const tls = decideTls(host, process.env.PYTHOND_TLS);
    const token = process.env.PYTHOND_TOKEN;
    if (!token) {
      throw new PythondError(
        "auth_failed",
        `PYTHOND_TOKEN is not set: the daemon at ${hostPort(host, port)} prints its token when started with ` +
          `--show-token (or keeps it in its --token-file)`,
      );
    }
    return { host, port, tls, token };
  }
  if (localTcpMode()) return localDaemonJson();
  return null;
}

/** Local TCP mode: the port and token the daemon wrote to daemon.json (0600) beside its socket. */
function localDaemonJson(): RemoteEndpoint {
  const path = join(runtimeDir(socketPath()), "daemon.json");
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    throw new PythondError("daemon_unreachable", `no daemon (no ${path}) -- start one with: pythond daemon (or: pyctl start)`);
  }
  if (process.platform !== "win32" && (statSync(path).mode & 0o077) !== 0) {
    throw new PythondError("auth_failed", `${path} is readable by others; refusing to use its token`);
  }
  const d = JSON.parse(text) as { port: number; token: string; pid: number };
  try {
    process.kill(d.pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ESRCH") {
      throw new PythondError("daemon_unreachable", `no daemon (${path} names pid ${d.pid}, which is gone) -- start one with: pythond daemon`);
    }
  }
  return { host: "127.0.0.1", port: d.port, tls: false, token: d.token };
}

function connectTimeoutMs(): number {
  const s = Number(process.env.PYTHOND_CONNECT_TIMEOUT || 10);
  return (s > 0 ? s : 10) * 1000;
}

interface TlsState {
  pins: Map<string, string>;
  /** Fingerprint the server presented, when Bun let us see it (chain verified). */
  seen?: string;
  /** Our client certificate's fingerprint, when one was presented. */
  presented: string | null;
}

/**
 * An open, not yet authenticated WebSocket to `ep` (the daemon answers a bad token with a text
 * frame and a close, which the caller reads like any reply; see `explainRejection`).
 */
export async function openRemote(
  ep: RemoteEndpoint,
  protocols: string[],
): Promise<{ ws: WebSocket; presented: string | null }> {
  const where = hostPort(ep.host, ep.port);
  const url = `${ep.tls ? "wss" : "ws"}://${where}/`;
  const state: TlsState = { pins: new Map(), presented: null };
  let tls: Record<string, unknown> | undefined;
  if (ep.tls) tls = await tlsOptions(ep, state);
  const timeout = connectTimeoutMs();
  const ws = new WebSocket(url, { headers: { Authorization: `Bearer ${ep.token}` }, protocols, tls } as unknown as string[]);
  await new Promise<void>((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => {
      settle();
      try {
        ws.close();
      } catch {}
      reject(
        new PythondError(
          "timeout",
          `timed out after ${timeout / 1000}s connecting to ${where} (no answer to the ${ep.tls ? "TLS handshake or the " : ""}WebSocket upgrade)`,
        ),
      );
    }, timeout);
    const settle = () => {
      settled = true;
      clearTimeout(timer);
    };
    ws.onopen = () => {
      if (settled) return;
      settle();
      resolve();
    };
    const failed = (ev: Event | CloseEvent) => {
      if (settled) return;
      settle();
      const err = (ev as unknown as { error?: NodeJS.ErrnoException; message?: string }).error;
      const detail = err?.code ?? "";
      const message = err?.message ?? (ev as unknown as { message?: string }).message ?? "";
      classify(ep, state, detail, message).then(reject, reject);
    };
    ws.onerror = failed;
    ws.onclose = failed;
  });
  return { ws, presented: state.presented };
}

async function tlsOptions(ep: RemoteEndpoint, state: TlsState): Promise<Record<string, unknown>> {
  // pins.ts and pem.ts decode and hash only: no ASN.1 parser on the connecting path.
  const { readOwnForClient, readPins } = await import("../tls/pins.ts");
  const { fingerprintOfPem } = await import("../tls/pem.ts");
  state.pins = readPins();
  if (state.pins.size === 0) {
    const fp = await serverFingerprint(ep);
    throw new PythondError(
      "auth_failed",
      `no server certificate pinned, so ${hostPort(ep.host, ep.port)} cannot be verified -- copy the server's ` +
        `~/.pythond/tls/cert.pem here and run: pyctl pin <cert.pem>` +
        (fp
          ? ` (the server presents ${fp}; compare it with what \`pyctl cert\` prints on the server)`
          : ` (and no TLS server answered there: is it down, or a plain listener? then unset PYTHOND_TLS)`),
    );
  }
  const opts: Record<string, unknown> = {
    // The pins are the only trust anchors; checkServerIdentity then demands an exact match, so a
    // pinned certificate cannot vouch for others, and host names do not matter (as known_hosts).
    ca: [...state.pins.values()],
    checkServerIdentity: (_host: string, cert: { raw?: Uint8Array; fingerprint256?: string }) => {
      const fp = cert.raw ? fingerprintOfPem(new Uint8Array(cert.raw)) : (cert.fingerprint256 ?? "").toUpperCase();
      state.seen = fp;
      return state.pins.has(fp) ? undefined : new Error("server certificate is not pinned");
    },
  };
  const own = readOwnForClient(); // none on this machine: fine unless the server wants one
  if (own) {
    opts.cert = own.certPem;
    opts.key = own.keyPem;
    state.presented = own.fingerprint;
  }
  return opts;
}

/**
 * The server's certificate fingerprint, from a handshake that verifies nothing and sends
 * nothing; null when there is no TLS server there. Only used to explain an error.
 */
export async function serverFingerprint(ep: { host: string; port: number }): Promise<string | null> {
  const { fingerprintOfPem } = await import("../tls/pem.ts");
  return new Promise((resolve) => {
    let done = false;
    const finish = (v: string | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(v);
    };
    const timer = setTimeout(() => finish(null), Math.min(connectTimeoutMs(), 5000));
    Bun.connect({
      hostname: ep.host,
      port: ep.port,
      tls: { rejectUnauthorized: false },
      socket: {
        handshake(s, ok) {
          const raw = ok ? s.getPeerCertificate()?.raw : undefined;
          finish(raw && raw.length ? fingerprintOfPem(new Uint8Array(raw)) : null);
          s.end();
        },
        data() {},
        close: () => finish(null),
        error: () => finish(null),
        connectError: () => finish(null),
      },
    }).catch(() => finish(null));
  });
}

const CERT_VERIFY = /CERT|SIGNATURE|ISSUER|SELF_SIGNED|UNABLE_TO_GET|not pinned|hostname/i;

async function classify(ep: RemoteEndpoint, state: TlsState, code: string, message: string): Promise<PythondError> {
  const where = hostPort(ep.host, ep.port);
  const text = `${code} ${message}`;
  if (code === "ECONNREFUSED" || /refused/i.test(message)) {
    return new PythondError("daemon_unreachable", `connection refused by ${where} (no daemon listening there?)`);
  }
  if (/ENOTFOUND|EAI_|DNS|resolve/i.test(text)) {
    return new PythondError("daemon_unreachable", `cannot resolve ${ep.host}`);
  }
  if (!ep.tls) {
    if (await serverFingerprint(ep)) {
      return new PythondError("daemon_unreachable", `${where} speaks TLS: set PYTHOND_TLS=1 (connect --tls for a proxy) and pin its certificate`);
    }
    return new PythondError("daemon_unreachable", `cannot connect to ${where}: ${message || code || "connection closed"}`);
  }
  if (/WRONG_VERSION_NUMBER|wrong version|packet length|HTTP_REQUEST/i.test(text)) {
    return new PythondError("daemon_unreachable", `${where} does not speak TLS (a plain TCP listener): unset PYTHOND_TLS (connect without --tls)`);
  }
  if (/CERTIFICATE_REQUIRED/i.test(text)) return new PythondError("auth_failed", clientCertRequired(where));
  if (state.seen && !state.pins.has(state.seen)) return mismatch(where, state.seen, state);
  if (CERT_VERIFY.test(text)) {
    const fp = await serverFingerprint(ep);
    if (fp && !state.pins.has(fp)) return mismatch(where, fp, state);
  }
  if (/ALERT_(BAD_CERTIFICATE|UNKNOWN_CA|CERTIFICATE_UNKNOWN|ACCESS_DENIED|HANDSHAKE_FAILURE)/i.test(text) && state.presented) {
    return new PythondError("auth_failed", clientCertUntrusted(where, state.presented));
  }
  return new PythondError("daemon_unreachable", `cannot connect to ${where}: ${message || code || "connection closed"}`);
}

function mismatch(where: string, got: string, state: TlsState): PythondError {
  const pinned = [...state.pins.keys()];
  const shown = pinned.slice(0, 3).join(", ") + (pinned.length > 3 ? ` (and ${pinned.length - 3} more)` : "");
  return new PythondError(
    "auth_failed",
    `server certificate mismatch for ${where}: it presents ${got}, pinned: ${shown} -- if the server's certificate ` +
      `was replaced on purpose, copy the new cert.pem here and run: pyctl pin <cert.pem>; otherwise do not connect`,
  );
}

function clientCertRequired(where: string): string {
  return (
    `auth failed: ${where} requires a trusted client certificate and this machine has none -- run \`pyctl cert\` ` +
    `here, copy ~/.pythond/tls/cert.pem to the server and run there: pyctl trust <cert.pem>`
  );
}

function clientCertUntrusted(where: string, fp: string): string {
  return (
    `auth failed: ${where} does not trust this machine's client certificate ${fp} -- copy ` +
    `~/.pythond/tls/cert.pem to the server and run there: pyctl trust <cert.pem>`
  );
}

/**
 * The first reply of a remote connection, made clearer for people: the daemon's rejections are
 * terse on purpose (REFERENCE: `ERR auth failed`), the client knows what to suggest.
 */
export function explainRejection(ep: RemoteEndpoint, presented: string | null, text: string): string {
  const where = hostPort(ep.host, ep.port);
  const frame = (message: string) => new PythondError("auth_failed", message).toFrame();
  switch (text) {
    case AUTH_REJECTION.plain:
      return frame(
        `auth failed: ${where} rejected the token` +
          (process.env.PYTHOND_HOST ? " in PYTHOND_TOKEN" : "") +
          ` (a daemon started without --token-file makes a new token at each start; see --show-token)`,
      );
    case AUTH_REJECTION.certRequired:
      return frame(clientCertRequired(where));
    case AUTH_REJECTION.certUntrusted:
      return frame(clientCertUntrusted(where, presented ?? "(none)"));
    default:
      return text;
  }
}
