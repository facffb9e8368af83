/**
 * The hub a node dials, as users write it: `wss://hub.example:7399`, the seed's
 * `ws://agent-host:8765/ws` (any path is accepted and sent), or a bare `host:port` (then wss).
 * Plain `ws://` is refused unless the host is loopback, as for the daemon's listener: the node's
 * join token would otherwise cross a network in clear text.
 */
import { DEFAULT_PORT, hostPort, isLoopback } from "../../protocol/endpoint.ts";
import { PythondError } from "../../protocol/errors.ts";

export interface HubUrl {
  tls: boolean;
  host: string;
  port: number;
  path: string;
  /** The URL to dial. */
  href: string;
  /** host:port, for messages. */
  where: string;
}

export function parseHubUrl(spec: string): HubUrl {
  const withScheme = /^[a-z]+:\/\//i.test(spec) ? spec : `wss://${spec}`;
  let u: URL;
  try {
    u = new URL(withScheme);
  } catch {
    throw new PythondError("usage", `not a hub URL: ${JSON.stringify(spec)} (write it as wss://HOST:PORT)`);
  }
  if (u.protocol !== "wss:" && u.protocol !== "ws:") {
    throw new PythondError("usage", `a hub URL starts with wss:// (or ws:// on loopback), not ${u.protocol}//`);
  }
  if (u.username || u.password || u.search || u.hash) throw new PythondError("usage", `a hub URL has no user, query or fragment: ${spec}`);
  const host = u.hostname.replace(/^\[|\]$/g, "");
  if (!host) throw new PythondError("usage", `no host in hub URL ${JSON.stringify(spec)}`);
  const port = u.port ? Number(u.port) : Number(process.env.PYTHOND_PORT || DEFAULT_PORT);
  const tls = u.protocol === "wss:";
  if (!tls && !isLoopback(host)) {
    throw new PythondError(
      "usage",
      `refusing plain ws:// to ${host}: the join token and the link would cross the network in clear text -- use wss://${hostPort(host, port)} (plain ws:// is for loopback only)`,
    );
  }
  const path = u.pathname || "/";
  const where = hostPort(host, port);
  return { tls, host, port, path, where, href: `${tls ? "wss" : "ws"}://${where}${path}` };
}
