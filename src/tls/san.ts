/**
 * subjectAltName values: which strings become IP SANs (4 or 16 raw bytes, as RFC 5280 wants)
 * and which become DNS SANs (IA5String, so ASCII only). Kept apart from cert.ts so that it can
 * be tested without loading pkijs.
 */
import { isIPv4, isIPv6 } from "node:net";
import { hostname } from "node:os";
import { PythondError } from "../protocol/errors.ts";
import { subjectAltNames } from "./fingerprint.ts";

export type San = { type: "dns"; value: string } | { type: "ip"; value: string; bytes: Uint8Array };

/** The names every certificate carries: loopback in all spellings plus this machine's name. */
export function defaultSans(): string[] {
  return ["localhost", "127.0.0.1", "::1", hostname()];
}

function ipv4Bytes(ip: string): Uint8Array {
  return Uint8Array.from(ip.split(".").map(Number));
}

function ipv6Bytes(ip: string): Uint8Array {
  let text = ip;
  // An embedded IPv4 tail ("::ffff:1.2.3.4") is rewritten as the two hex groups it stands for.
  const lastColon = text.lastIndexOf(":");
  if (text.includes(".", lastColon)) {
    const v4 = ipv4Bytes(text.slice(lastColon + 1));
    const hex = (hi: number, lo: number) => ((hi << 8) | lo).toString(16);
    text = `${text.slice(0, lastColon + 1)}${hex(v4[0]!, v4[1]!)}:${hex(v4[2]!, v4[3]!)}`;
  }
  const groupsOf = (part: string): number[] => (part === "" ? [] : part.split(":").map((g) => parseInt(g, 16)));
  const gap = text.indexOf("::");
  let groups: number[];
  if (gap === -1) groups = groupsOf(text);
  else {
    const head = groupsOf(text.slice(0, gap));
    const rest = groupsOf(text.slice(gap + 2));
    groups = [...head, ...Array<number>(8 - head.length - rest.length).fill(0), ...rest];
  }
  if (groups.length !== 8 || groups.some((g) => !(g >= 0 && g <= 0xffff))) {
    throw new PythondError("tls_bad_san", `cannot encode IPv6 address: ${ip}`);
  }
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  return out;
}

/** Raw bytes of an IP literal (4 for IPv4, 16 for IPv6), or null when `s` is not one. */
export function ipLiteralBytes(s: string): Uint8Array | null {
  const bare = s.startsWith("[") && s.endsWith("]") ? s.slice(1, -1) : s;
  if (isIPv4(bare)) return ipv4Bytes(bare);
  // A zone id ("fe80::1%eth0") has no place in a certificate; isIPv6 accepts it, we drop it.
  if (isIPv6(bare)) return ipv6Bytes(bare.split("%")[0]!);
  return null;
}

const DNS_NAME = /^(\*\.)?[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*\.?$/;

function sanKey(san: San): string {
  return san.type === "ip" ? `ip:${Array.from(san.bytes).join(",")}` : `dns:${san.value.toLowerCase()}`;
}

/**
 * Classify and de-duplicate SAN values. Defaults first, then `extra` in order. A bad extra value
 * throws tls_bad_san; an odd machine hostname (not a valid DNS name) is skipped instead, because
 * the user did not ask for it and should still get a certificate.
 */
export function buildSans(extra: readonly string[] = []): San[] {
  const seen = new Set<string>();
  const out: San[] = [];
  const add = (raw: string, strict: boolean) => {
    let value = raw.trim();
    const bytes = ipLiteralBytes(value);
    if (bytes) value = value.replace(/^\[(.*)\]$/, "$1");
    let san: San;
    if (bytes) san = { type: "ip", value, bytes };
    else if (value.length <= 253 && DNS_NAME.test(value)) san = { type: "dns", value: value.replace(/\.$/, "") };
    else if (strict) throw new PythondError("tls_bad_san", `not a DNS name or IP address: ${JSON.stringify(raw)}`);
    else return;
    const key = sanKey(san);
    if (seen.has(key)) return;
    seen.add(key);
    out.push(san);
  };
  const defaults = defaultSans();
  defaults.slice(0, 3).forEach((s) => add(s, true));
  add(defaults[3]!, false);
  extra.forEach((s) => add(s, true));
  return out;
}

/**
 * The values of `wanted` (validated like --san) that the certificate does not carry, so the
 * daemon can say that --san only applies when a certificate is generated.
 */
export function missingSans(certPem: string, wanted: readonly string[]): string[] {
  if (wanted.length === 0) return [];
  const have = subjectAltNames(certPem);
  const keys = new Set([
    ...have.dns.map((d) => sanKey({ type: "dns", value: d })),
    ...have.ip.map((bytes) => sanKey({ type: "ip", value: "", bytes })),
  ]);
  const defaults = buildSans([]).length;
  // buildSans validates (throws tls_bad_san) and canonicalises; the defaults come first.
  return buildSans(wanted)
    .slice(defaults)
    .filter((san) => !keys.has(sanKey(san)))
    .map((san) => san.value);
}
