/**
 * Certificate parsing with asn1js (~7 ms to import, never pkijs): basicConstraints CA, the
 * single-certificate check of the stores, subjectAltNames. The PEM and fingerprint helpers live
 * in pem.ts (no parser) and are re-exported here.
 */
import * as asn1js from "asn1js";
import { PythondError } from "../protocol/errors.ts";
import { derOf, pemBlocks } from "./pem.ts";

export { derToPem, fingerprintHex, fingerprintOfPem, normaliseFingerprint, pemBlocks, pemToDer } from "./pem.ts";

const BASIC_CONSTRAINTS = "2.5.29.19";

/** The extensions of a DER certificate; throws tls_bad_cert when it is not X.509 shaped. */
function certificateExtensions(der: Uint8Array): asn1js.Sequence[] {
  const bad = (why: string) => new PythondError("tls_bad_cert", `not an X.509 certificate: ${why}`);
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
  // BasicConstraints ::= SEQUENCE { cA BOOLEAN DEFAULT FALSE, pathLenConstraint INTEGER OPTIONAL }
  const bc = extensionSequence(derOf(pem), BASIC_CONSTRAINTS, "basicConstraints");
  const flag = bc?.valueBlock.value[0];
  return flag instanceof asn1js.Boolean && flag.getValue();
}

/** The SEQUENCE inside the extension `oid` (its OCTET STRING value, parsed), or null if absent. */
function extensionSequence(der: Uint8Array, oid: string, what: string): asn1js.Sequence | null {
  for (const ext of certificateExtensions(der)) {
    const [id, ...rest] = ext.valueBlock.value;
    if (!(id instanceof asn1js.ObjectIdentifier) || id.valueBlock.toString() !== oid) continue;
    const value = rest[rest.length - 1];
    if (!(value instanceof asn1js.OctetString)) throw new PythondError("tls_bad_cert", `malformed ${what}`);
    const parsed = asn1js.fromBER(value.valueBlock.valueHexView);
    if (parsed.offset === -1 || !(parsed.result instanceof asn1js.Sequence)) {
      throw new PythondError("tls_bad_cert", `malformed ${what}`);
    }
    return parsed.result;
  }
  return null;
}

/** Throws tls_bad_cert unless `pem` holds exactly one parseable certificate; returns its DER. */
export function singleCertificateDer(pem: string): Uint8Array {
  const certs = pemBlocks(pem).filter((b) => b.label === "CERTIFICATE");
  if (certs.length === 0) throw new PythondError("tls_bad_cert", "no PEM CERTIFICATE block found");
  if (certs.length > 1) {
    throw new PythondError("tls_bad_cert", `${certs.length} certificates found; give exactly one (the peer's own)`);
  }
  certificateExtensions(certs[0]!.der); // validates the structure
  return certs[0]!.der;
}

const SUBJECT_ALT_NAME = "2.5.29.17";

/**
 * The subjectAltNames of a certificate: DNS names (as written) and IP addresses (raw 4 or 16
 * bytes). Other name types are ignored. Throws tls_bad_cert when the input is not a certificate.
 */
export function subjectAltNames(pem: string | Uint8Array): { dns: string[]; ip: Uint8Array[] } {
  const out = { dns: [] as string[], ip: [] as Uint8Array[] };
  const names = extensionSequence(derOf(pem), SUBJECT_ALT_NAME, "subjectAltName");
  for (const n of names?.valueBlock.value ?? []) {
    if (n.idBlock.tagClass !== 3) continue;
    const bytes = new Uint8Array((n.valueBlock as unknown as { valueHexView: Uint8Array }).valueHexView ?? []);
    if (n.idBlock.tagNumber === 2) out.dns.push(new TextDecoder().decode(bytes));
    else if (n.idBlock.tagNumber === 7) out.ip.push(bytes);
  }
  return out;
}
