/**
 * What a connecting client needs from ~/.pythond/tls, without loading an ASN.1 parser: the pinned
 * server certificates and this machine's own certificate and key (presented for mTLS). The pin
 * files were validated (one leaf certificate, not a CA) when `pyctl pin` wrote them, so reading
 * them back only decodes PEM and hashes; a damaged file pins nothing.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fingerprintOfPem } from "./pem.ts";
import { tlsDirPath } from "./dir.ts";

/** Pinned server certificates: fingerprint "AA:BB:…" -> PEM. */
export function readPins(): Map<string, string> {
  const dir = join(tlsDirPath(), "trusted_servers");
  const pins = new Map<string, string>();
  let names: string[] = [];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith(".pem")).sort();
  } catch {
    return pins;
  }
  for (const name of names) {
    try {
      const pem = readFileSync(join(dir, name), "utf8");
      pins.set(fingerprintOfPem(pem), pem);
    } catch {
      // unreadable or not PEM: fails closed
    }
  }
  return pins;
}

/** This machine's certificate and key, when both exist (never generated here). */
export function readOwnForClient(): { certPem: string; keyPem: string; fingerprint: string } | null {
  try {
    const certPem = readFileSync(join(tlsDirPath(), "cert.pem"), "utf8");
    const keyPem = readFileSync(join(tlsDirPath(), "key.pem"), "utf8");
    return { certPem, keyPem, fingerprint: fingerprintOfPem(certPem) };
  } catch {
    return null;
  }
}
