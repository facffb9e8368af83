/**
 * `pyctl join-token`: makes a token and the whole command a machine runs to join, with the hub's
 * address and certificate fingerprint in it. The address comes from the running hub's listener
 * (`hello` tells its endpoints); a wildcard address (0.0.0.0, ::) is replaced by this machine's
 * host name, which is what other machines would dial. `--url` overrides it (a NAT, a DNS name).
 */
import { hostname } from "node:os";
import { PythondError } from "../../protocol/errors.ts";
import { hostPort } from "../../protocol/endpoint.ts";
import { formatLabels } from "../../protocol/fleet.ts";
import { tokenState, TokenStore, type TokenRecord } from "./tokens.ts";

/** The hub URL for nodes, from the daemon's listener endpoints (`tls://H:P`, `tcp://H:P`). */
export function hubUrlFromEndpoints(endpoints: readonly string[]): string | null {
  const parsed = endpoints
    .map((e) => /^(tls|tcp):\/\/(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(e))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ tls: m[1] === "tls", host: m[2] ?? m[3]!, port: Number(m[4]) }));
  const wild = (h: string) => h === "0.0.0.0" || h === "::";
  const loop = (h: string) => /^127\./.test(h) || h === "::1";
  const pick = parsed.find((p) => p.tls && !loop(p.host)) ?? parsed.find((p) => p.tls) ?? parsed.find((p) => !p.tls);
  if (!pick) return null;
  const host = wild(pick.host) ? hostname() : pick.host;
  return `${pick.tls ? "wss" : "ws"}://${hostPort(host, pick.port)}`;
}

export interface JoinTokenResult {
  token: string;
  record: TokenRecord;
  command: string;
}

export async function makeJoinToken(opts: {
  ttlMs: number;
  uses: number | null;
  labels: Record<string, string>;
  url: string;
  fingerprint: string | null;
}): Promise<JoinTokenResult> {
  if (opts.url.startsWith("wss://") && !opts.fingerprint) {
    throw new PythondError("io", "the hub has no certificate yet (~/.pythond/tls/cert.pem): start it with --listen first");
  }
  const { token, record } = await new TokenStore().create(opts);
  const fp = opts.url.startsWith("wss://") ? ` --fingerprint ${opts.fingerprint}` : "";
  return { token, record, command: `pythond join ${opts.url} --token ${token}${fp}` };
}

/** One line about a token: `# join token ID: expires …, uses, labels`. */
export function describeToken(r: TokenRecord): string {
  const uses = r.uses_max === null ? "reusable until then" : r.uses_max === 1 ? "single use" : `${r.uses_max} uses`;
  const labels = formatLabels(r.labels);
  return `join token ${r.id}: expires ${r.expires.replace("T", " ").replace(/:\d\d\.\d+Z$/, " UTC")}, ${uses}${labels ? `, labels ${labels}` : ""}`;
}

/** `--list`: a table of the tokens on file. */
export function tokenTable(records: readonly TokenRecord[], now = Date.now()): string {
  if (records.length === 0) return "(no join tokens; make one with: pyctl join-token)";
  const rows = records.map((r) => [
    r.id,
    tokenState(r, now),
    r.expires.replace("T", " ").replace(/\.\d+Z$/, "Z"),
    r.uses_max === null ? "unlimited" : `${r.uses}/${r.uses_max}`,
    formatLabels(r.labels) || "-",
  ]);
  const head = ["ID", "STATE", "EXPIRES", "USES", "LABELS"];
  const all = [head, ...rows];
  const widths = head.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  return all.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ")).join("\n");
}
