/**
 * TCP endpoints as users write them and as pythond shows them: `HOST:PORT`, `[V6]:PORT`, or a bare
 * HOST (then PYTHOND_PORT, else DEFAULT_PORT). Shared by the daemon's `--listen`, the client's
 * PYTHOND_HOST and `pyctl connect`, so the three accept and print the same forms.
 */
import { isIPv6 } from "node:net";
import { PythondError } from "./errors.ts";

/** The port when none is given (REFERENCE: PYTHOND_PORT, default 7984). */
export const DEFAULT_PORT = 7984;

/** Splits an endpoint; `what` names it in the usage error. An empty host is returned as "". */
export function splitHostPort(spec: string, what: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(spec) ?? /^([^:\s[\]]*)(?::(\d+))?$/.exec(spec);
  const port = Number(m?.[2] ?? (process.env.PYTHOND_PORT || DEFAULT_PORT));
  if (!m || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new PythondError("usage", `${what} takes HOST:PORT (got ${JSON.stringify(spec)})`);
  }
  return { host: m[1]!, port };
}

/** Loopback addresses (and the name localhost): the only place plain TCP is allowed. */
export function isLoopback(host: string): boolean {
  return /^127\./.test(host) || host === "::1" || host === "localhost";
}

/** `host:port`, with brackets around an IPv6 address. */
export function hostPort(host: string, port: number): string {
  return isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}
