/**
 * PEM/DER conversion and SHA-256 fingerprints, without any ASN.1 parser: this is all a client
 * needs to check a pinned server (see pins.ts), so it stays out of asn1js's import cost.
 *
 * Fingerprints are SHA-256 over the DER bytes, shown as "AA:BB:…" (what `openssl x509
 * -fingerprint -sha256` and Bun's `cert.fingerprint256` print) or as 64 lower-case hex digits
 * (file names, JSON).
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex } from "@noble/hashes/utils.js";
import { PythondError } from "../protocol/errors.ts";

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([A-Za-z0-9+/=\s]*?)-----END \1-----/g;

/** Every `-----BEGIN <label>-----` block of `text`, decoded. */
export function pemBlocks(text: string): { label: string; der: Uint8Array<ArrayBuffer> }[] {
  return Array.from(text.matchAll(PEM_BLOCK), (m) => ({
    label: m[1]!,
    der: new Uint8Array(Buffer.from(m[2]!.replace(/\s+/g, ""), "base64")),
  }));
}

/** DER bytes of the first block labelled `label` (default CERTIFICATE); throws tls_bad_cert. */
export function pemToDer(pem: string, label = "CERTIFICATE"): Uint8Array<ArrayBuffer> {
  const block = pemBlocks(pem).find((b) => b.label === label);
  if (!block || block.der.length === 0) throw new PythondError("tls_bad_cert", `no PEM ${label} block found`);
  return block.der;
}

/** PEM text with 64-column base64 lines and a trailing newline. */
export function derToPem(der: Uint8Array, label = "CERTIFICATE"): string {
  const b64 = Buffer.from(der).toString("base64");
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

export function derOf(pemOrDer: string | Uint8Array): Uint8Array {
  return typeof pemOrDer === "string" ? pemToDer(pemOrDer) : pemOrDer;
}

/** SHA-256 fingerprint as upper-case, colon-separated hex: "AA:BB:…" (95 characters). */
export function fingerprintOfPem(pem: string | Uint8Array): string {
  return colonForm(fingerprintHex(pem));
}

/** SHA-256 fingerprint as 64 lower-case hex digits, no separators. */
export function fingerprintHex(pem: string | Uint8Array): string {
  return bytesToHex(sha256(derOf(pem)));
}

function colonForm(hex: string): string {
  return hex.toUpperCase().match(/../g)!.join(":");
}

/**
 * Canonical "AA:BB:…" form of a SHA-256 fingerprint given as "AA:BB:…", "aa:bb:…", 64 hex
 * digits, or openssl's "sha256 Fingerprint=AA:…" / "SHA256:" prefixed forms. Throws
 * tls_bad_fingerprint otherwise.
 */
export function normaliseFingerprint(s: string): string {
  const bare = s.trim().replace(/^(sha-?256( fingerprint)?\s*[=:]\s*)/i, "");
  const hex = /^[0-9a-f]{2}(:[0-9a-f]{2}){31}$/i.test(bare) ? bare.replaceAll(":", "") : bare;
  if (!/^[0-9a-f]{64}$/i.test(hex)) {
    throw new PythondError("tls_bad_fingerprint", `not a SHA-256 fingerprint: ${JSON.stringify(s)}`);
  }
  return colonForm(hex);
}
