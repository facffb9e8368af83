/**
 * PEM/DER conversion, SHA-256 fingerprints and the one certificate property the stores care
 * about (basicConstraints CA). Parsing only: this file must stay light, because clients load it
 * to pin servers. It uses asn1js (~7 ms to import) and never pkijs (~35 ms more).
 *
 * Fingerprints are SHA-256 over the DER bytes, shown as "AA:BB:…" (what `openssl x509
 * -fingerprint -sha256` and Bun's `cert.fingerprint256` print) or as 64 lower-case hex digits
 * (file names, JSON).
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex } from "@noble/hashes/utils.js";
import * as asn1js from "asn1js";
import { TlsError } from "./errors.ts";

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([A-Za-z0-9+/=\s]*?)-----END \1-----/g;

/** Every `-----BEGIN <label>-----` block of `text`, decoded. */
export function pemBlocks(text: string): { label: string; der: Uint8Array }[] {
  return Array.from(text.matchAll(PEM_BLOCK), (m) => ({
    label: m[1]!,
    der: new Uint8Array(Buffer.from(m[2]!.replace(/\s+/g, ""), "base64")),
  }));
}

/** DER bytes of the first block labelled `label` (default CERTIFICATE); throws tls_bad_cert. */
export function pemToDer(pem: string, label = "CERTIFICATE"): Uint8Array {
  const block = pemBlocks(pem).find((b) => b.label === label);
  if (!block || block.der.length === 0) throw new TlsError("tls_bad_cert", `no PEM ${label} block found`);
  return block.der;
}

/** PEM text with 64-column base64 lines and a trailing newline. */
export function derToPem(der: Uint8Array, label = "CERTIFICATE"): string {
  const b64 = Buffer.from(der).toString("base64");
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

function derOf(pemOrDer: string | Uint8Array): Uint8Array {
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
    throw new TlsError("tls_bad_fingerprint", `not a SHA-256 fingerprint: ${JSON.stringify(s)}`);
  }
  return colonForm(hex);
}

const BASIC_CONSTRAINTS = "2.5.29.19";

/** The extensions of a DER certificate; throws tls_bad_cert when it is not X.509 shaped. */
function certificateExtensions(der: Uint8Array): asn1js.Sequence[] {
  const bad = (why: string) => new TlsError("tls_bad_cert", `not an X.509 certificate: ${why}`);
  const parsed = asn1js.fromBER(der);
  if (parsed.offset === -1) throw bad(parsed.result.error || "bad DER");
  if (parsed.offset !== der.byteLength) throw bad("trailing bytes after the certificate");
  const cert = parsed.result;
  // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue BIT STRING }
  if (!(cert instanceof asn1js.Sequence) || cert.valueBlock.value.length !== 3) throw bad("wrong outer structure");
  const [tbs, alg, sig] = cert.valueBlock.value;
  if (!(tbs instanceof asn1js.Sequence) || !(alg instanceof asn1js.Sequence) || !(sig instanceof asn1js.BitString)) {
    throw bad("wrong outer structure");
  }
  // TBSCertificate: [0] version?, serial INTEGER, signature, issuer, validity, subject, spki,
  // [1] issuerUID?, [2] subjectUID?, [3] extensions? — at least six fields.
  const fields = tbs.valueBlock.value;
  const first = fields[0]?.idBlock;
  const hasVersion = first?.tagClass === 3 && first.tagNumber === 0;
  if (fields.length < (hasVersion ? 7 : 6) || !(fields[hasVersion ? 1 : 0] instanceof asn1js.Integer)) {
    throw bad("wrong TBSCertificate structure");
  }
  const extsTagged = fields.find((f) => f.idBlock.tagClass === 3 && f.idBlock.tagNumber === 3);
  if (!extsTagged) return [];
  const inner = (extsTagged as asn1js.Constructed).valueBlock.value?.[0];
  if (!(inner instanceof asn1js.Sequence)) throw bad("malformed extensions");
  return inner.valueBlock.value.filter((e): e is asn1js.Sequence => e instanceof asn1js.Sequence);
}

/**
 * True when the certificate carries basicConstraints with cA TRUE. A certificate without the
 * extension is not a CA (RFC 5280 4.2.1.9: such a key must not verify certificates). Throws
 * tls_bad_cert when the input is not a parseable certificate.
 */
export function isCaCertificate(pem: string | Uint8Array): boolean {
  for (const ext of certificateExtensions(derOf(pem))) {
    const [oid, ...rest] = ext.valueBlock.value;
    if (!(oid instanceof asn1js.ObjectIdentifier) || oid.valueBlock.toString() !== BASIC_CONSTRAINTS) continue;
    const value = rest[rest.length - 1];
    if (!(value instanceof asn1js.OctetString)) throw new TlsError("tls_bad_cert", "malformed basicConstraints");
    // BasicConstraints ::= SEQUENCE { cA BOOLEAN DEFAULT FALSE, pathLenConstraint INTEGER OPTIONAL }
    const bc = asn1js.fromBER(value.valueBlock.valueHexView);
    if (bc.offset === -1 || !(bc.result instanceof asn1js.Sequence)) {
      throw new TlsError("tls_bad_cert", "malformed basicConstraints");
    }
    const flag = bc.result.valueBlock.value[0];
    return flag instanceof asn1js.Boolean && flag.getValue();
  }
  return false;
}

/** Throws tls_bad_cert unless `pem` holds exactly one parseable certificate; returns its DER. */
export function singleCertificateDer(pem: string): Uint8Array {
  const certs = pemBlocks(pem).filter((b) => b.label === "CERTIFICATE");
  if (certs.length === 0) throw new TlsError("tls_bad_cert", "no PEM CERTIFICATE block found");
  if (certs.length > 1) {
    throw new TlsError("tls_bad_cert", `${certs.length} certificates found; give exactly one (the peer's own)`);
  }
  certificateExtensions(certs[0]!.der); // validates the structure
  return certs[0]!.der;
}
