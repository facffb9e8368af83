/**
 * Remote access set-up, before the daemon serves: the `--listen` addresses (and whether each gets
 * TLS), the token (random, or --token-file), the certificate (generated on first use, pkijs loaded
 * only then), and the --show-token lines. Everything that can fail does so here, before the start
 * lock is kept and the socket is bound; listen-tcp.ts then runs the listeners.
 */
import { isIPv4, isIPv6 } from "node:net";
import { DEFAULT_PORT, hostPort, isLoopback, splitHostPort } from "../protocol/endpoint.ts";
import { PythondError } from "../protocol/errors.ts";
import { loadOrCreateTokenFile, newToken } from "./auth.ts";
import { RemoteAccess } from "./listen-tcp.ts";
import type { ListenAddress, RemoteOptions } from "./types.ts";

export type { ListenAddress, RemoteOptions } from "./types.ts";

/** Parses HOST:PORT, [V6]:PORT or HOST (port PYTHOND_PORT or 7984; empty host: all); decides TLS. */
export function parseListen(spec: string, forceTls: boolean): ListenAddress {
  const split = splitHostPort(spec, "--listen");
  let host = split.host || "0.0.0.0";
  if (host === "localhost") host = "127.0.0.1";
  if (!isIPv4(host) && !isIPv6(host) && !/^[A-Za-z0-9.-]+$/.test(host)) {
    throw new PythondError("usage", `--listen: not a host name or address: ${JSON.stringify(host)}`);
  }
  const loopback = isLoopback(host);
  return { host, port: split.port, loopback, tls: forceTls || !loopback };
}

/**
 * Everything that can fail before the daemon serves: addresses, token, certificate. Prints the
 * --show-token lines (and why the token is not shown otherwise) through `say`/`print`.
 */
export async function prepareRemote(
  opts: RemoteOptions,
  out: { say(msg: string): void; print(line: string): void },
): Promise<RemoteAccess> {
  const addresses = opts.listen.map((sp) => parseListen(sp, opts.tls));
  if (opts.localTcp) {
    // First, so that daemon.json names it; plain, because local clients read the token from there.
    const port = Number(process.env.PYTHOND_PORT || DEFAULT_PORT);
    addresses.unshift({ host: "127.0.0.1", port, loopback: true, tls: false, local: true });
  }
  const t = opts.tokenFile ? loadOrCreateTokenFile(opts.tokenFile) : { token: newToken(), created: false };
  let cert: { certPem: string; keyPem: string; fingerprint: string; certPath: string } | undefined;
  if (addresses.some((a) => a.tls)) {
    const { ensureOwnCertificate, missingSans } = await import("../tls/index.ts");
    cert = await ensureOwnCertificate({ sans: opts.sans }); // PythondError tls_* when it cannot
    const missing = missingSans(cert.certPem, opts.sans);
    if (missing.length) {
      out.say(
        `note: ${cert.certPath} was made without --san ${missing.join(", ")}; --san applies when the certificate is ` +
          `first generated (remove cert.pem and key.pem to regenerate; clients must then pin the new one)`,
      );
    }
  }
  for (const a of addresses) {
    if (a.tls && a.loopback === false && !opts.tls) out.say(`${hostPort(a.host, a.port)} is not loopback: TLS is on`);
  }
  if (opts.showToken) {
    out.print(`token=${t.token}`);
    if (cert) out.print(`fingerprint: ${cert.fingerprint}`);
  } else if (opts.tokenFile) {
    out.say(`token ${t.created ? "written to" : "read from"} ${opts.tokenFile}`);
  } else if (!opts.localTcp) {
    out.say("token not shown (use --show-token, or --token-file PATH to keep one across restarts)");
  }
  return new RemoteAccess(opts, addresses, t.token, cert);
}
