/**
 * A WebSocket client on Bun.connect: TCP or TLS, the opening handshake (RFC 6455 4.1), then the
 * framing of ws-socket.ts in the client role. What a node dials its hub with (src/fleet/node/dial.ts).
 *
 *   connectWebSocket({ host, port, path, protocol, name, timeoutMs, maxMessage, tls? })
 *     -> an open SocketWsChannel; messages that came with the 101 wait for its onMessage.
 *
 * TLS: the client presents `cert`/`key` when given (mTLS), and the server is judged by
 * `checkPeer(fingerprint)` alone, called with the SHA-256 fingerprint ("AA:BB:…") of the
 * certificate it presented: a pinned certificate is compared exactly, no CA store is consulted
 * (and none of Bun's "hostname mismatch" wording for what is really a pin mismatch).
 *
 * Every failure is a PythondError naming `name` (e.g. "the hub at host:7399"): refused, no TLS,
 * the peer's certificate, an HTTP answer other than 101 (its status line), a wrong
 * Sec-WebSocket-Accept or subprotocol, the connection closed, or the time running out.
 */
import type { Socket } from "bun";
import { PythondError } from "../protocol/errors.ts";
import { acceptKey, SocketWsChannel } from "./ws-socket.ts";

export interface WsConnectOptions {
  host: string;
  port: number;
  path: string;
  /** The subprotocol asked for; the server must choose it. */
  protocol: string;
  /** Who is dialed, for messages: "the hub at host:port". */
  name: string;
  timeoutMs: number;
  maxMessage: number;
  tls?: {
    cert?: string;
    key?: string;
    /** The server's certificate fingerprint: an Error refuses it (its message is the failure's). */
    checkPeer(fingerprint: string): Error | undefined;
  };
}

/** The largest HTTP answer head accepted before the 101 is complete. */
const MAX_HEAD = 16 * 1024;

interface Dial {
  phase: "connect" | "upgrade" | "open" | "failed";
  head: Uint8Array[];
  headBytes: number;
  ch?: SocketWsChannel;
}

export function connectWebSocket(o: WsConnectOptions): Promise<SocketWsChannel> {
  const key = Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("base64");
  const hostHeader = o.host.includes(":") ? `[${o.host}]:${o.port}` : `${o.host}:${o.port}`;
  const request =
    `GET ${o.path || "/"} HTTP/1.1\r\nHost: ${hostHeader}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ${o.protocol}\r\n\r\n`;
  return new Promise<SocketWsChannel>((resolve, reject) => {
    const d: Dial = { phase: "connect", head: [], headBytes: 0 };
    let socket: Socket<Dial> | undefined;
    const fail = (e: PythondError) => {
      if (d.phase === "open" || d.phase === "failed") return;
      d.phase = "failed";
      clearTimeout(timer);
      socket?.terminate();
      reject(e);
    };
    const timer = setTimeout(
      () => fail(new PythondError("timeout", `timed out after ${o.timeoutMs / 1000}s connecting to ${o.name}`)),
      o.timeoutMs,
    );
    const upgrade = (s: Socket<Dial>) => {
      d.phase = "upgrade";
      s.write(request);
    };
    const answered = (s: Socket<Dial>, bytes: Uint8Array) => {
      d.head.push(bytes.slice());
      d.headBytes += bytes.length;
      const all = Buffer.concat(d.head);
      const end = all.indexOf("\r\n\r\n");
      if (end < 0) {
        if (d.headBytes > MAX_HEAD) fail(new PythondError("bad_frame", `${o.name} sent an over-long answer to the WebSocket upgrade`));
        return;
      }
      const problem = judgeAnswer(all.subarray(0, end).toString("latin1"), key, o.protocol);
      if (problem) return fail(new PythondError("daemon_unreachable", `${o.name} ${problem}`));
      const ch = new SocketWsChannel(s as Socket<unknown>, o.maxMessage, "client");
      d.ch = ch;
      d.phase = "open";
      clearTimeout(timer);
      resolve(ch);
      if (end + 4 < all.length) ch.feed(all.subarray(end + 4));
    };
    Bun.connect<Dial>({
      hostname: o.host,
      port: o.port,
      data: d,
      ...(o.tls
        ? {
            tls: {
              ...(o.tls.cert ? { cert: o.tls.cert, key: o.tls.key } : {}),
              // checkPeer judges the certificate (a pin), not a CA store
              rejectUnauthorized: false,
              ...(/^[\d.]+$|:/.test(o.host) ? {} : { serverName: o.host }),
            },
          }
        : {}),
      socket: {
        open(s) {
          socket = s;
          if (d.phase === "failed") return void s.terminate();
          if (!o.tls) upgrade(s);
        },
        handshake(s, _ok, err) {
          if (d.phase !== "connect") return;
          const cert = s.getPeerCertificate();
          const fp = typeof cert?.fingerprint256 === "string" ? cert.fingerprint256.toUpperCase() : "";
          if (!fp) return fail(new PythondError("daemon_unreachable", `the TLS handshake with ${o.name} failed${err?.message ? `: ${err.message}` : " (no certificate presented)"}`));
          const refused = o.tls!.checkPeer(fp);
          if (refused) return fail(refused instanceof PythondError ? refused : new PythondError("auth_failed", refused.message));
          upgrade(s);
        },
        data(s, bytes) {
          if (d.phase === "open") d.ch!.feed(bytes);
          else if (d.phase === "upgrade") answered(s, bytes);
        },
        drain() {
          if (d.phase === "open") d.ch!.drain();
        },
        close() {
          if (d.phase === "open") return d.ch!.gone();
          fail(new PythondError("daemon_unreachable", `${o.name} closed the connection ${d.phase === "connect" ? (o.tls ? "during the TLS handshake" : "at once") : "before answering the WebSocket upgrade"}`));
        },
        error(_s, e) {
          fail(new PythondError("daemon_unreachable", `cannot reach ${o.name}: ${e.message}`));
        },
        connectError(_s, e) {
          fail(connectFailure(o.name, e));
        },
      },
    }).then(
      (s) => {
        socket = s;
        if (d.phase === "failed") s.terminate();
      },
      (e: Error) => fail(connectFailure(o.name, e)),
    );
  });
}

/** A failed connect, said as a user reads it. */
export function connectFailure(name: string, e: Error): PythondError {
  const code = (e as NodeJS.ErrnoException).code ?? "";
  if (code === "ECONNREFUSED" || /refused/i.test(e.message)) return new PythondError("daemon_unreachable", `connection refused by ${name}`);
  return new PythondError("daemon_unreachable", `cannot reach ${name}: ${e.message || code}`);
}

/** What is wrong with the server's answer head (undefined: a good 101). */
export function judgeAnswer(head: string, key: string, protocol: string): string | undefined {
  const lines = head.split("\r\n");
  const status = lines[0] ?? "";
  if (!/^HTTP\/1\.1 101\b/.test(status)) return `refused the WebSocket upgrade: ${JSON.stringify(status.slice(0, 200))}`;
  const h = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const i = line.indexOf(":");
    if (i > 0) h.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
  }
  if ((h.get("upgrade") ?? "").toLowerCase() !== "websocket") return "answered 101 without Upgrade: websocket";
  if (h.get("sec-websocket-accept") !== acceptKey(key)) return "answered the WebSocket upgrade with a wrong Sec-WebSocket-Accept";
  if (h.get("sec-websocket-protocol") !== protocol) return `did not accept the WebSocket subprotocol ${protocol}`;
  return undefined;
}
