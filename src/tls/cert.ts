/**
 * Self-signed certificate generation, in-process: an ECDSA P-256 key from WebCrypto, an X.509 v3
 * certificate assembled and signed by pkijs. No openssl binary is needed at run time.
 *
 * The certificate is a leaf (CA:FALSE, critical): peers pin it by being given it as their only
 * `ca`, and a CA:TRUE certificate would let its holder mint certificates for anyone. It is usable
 * both as a server certificate (daemon listener, fleet hub) and as a client certificate (mTLS).
 *
 * This is the only file of src/tls that loads pkijs (~35 ms to import); callers that only need
 * fingerprints or the stores should not import it eagerly.
 */
import * as asn1js from "asn1js";
import * as pkijs from "pkijs";
import { derToPem } from "./fingerprint.ts";
import { buildSans, type San } from "./san.ts";

export interface GenerateOptions {
  /** Extra subjectAltNames; an IPv4/IPv6 literal becomes an IP SAN, anything else a DNS SAN. */
  sans?: string[];
  /** Subject and issuer CN. Default "pythond". */
  commonName?: string;
  /** Validity in days from now. Default 3650 (~10 years). */
  days?: number;
}

export interface GeneratedCertificate {
  /** "-----BEGIN CERTIFICATE-----" PEM. */
  certPem: string;
  /** PKCS#8 "-----BEGIN PRIVATE KEY-----" PEM. */
  keyPem: string;
}

const OID = {
  commonName: "2.5.4.3",
  basicConstraints: "2.5.29.19",
  keyUsage: "2.5.29.15",
  extKeyUsage: "2.5.29.37",
  subjectAltName: "2.5.29.17",
  subjectKeyIdentifier: "2.5.29.14",
  serverAuth: "1.3.6.1.5.5.7.3.1",
  clientAuth: "1.3.6.1.5.5.7.3.2",
} as const;

let engineReady = false;

/** pkijs keeps a global engine; point it at Bun's WebCrypto once, on first use. */
function ensureEngine(): void {
  if (engineReady) return;
  // The cast: pkijs's ICryptoEngine extends the DOM SubtleCrypto type, which newer TypeScript libs
  // grew (encapsulateKey & co.) beyond what pkijs 3.4's CryptoEngine declares. Runtime is fine.
  const engine = new pkijs.CryptoEngine({ name: "bun", crypto }) as unknown as pkijs.ICryptoEngine;
  pkijs.setEngine("bun", engine);
  engineReady = true;
}

function extension(extnID: string, critical: boolean, value: { toSchema(): asn1js.BaseBlock } | asn1js.BaseBlock) {
  const schema = "toSchema" in value ? value.toSchema() : value;
  return new pkijs.Extension({ extnID, critical, extnValue: schema.toBER(false) });
}

function keyUsage(): asn1js.BitString {
  // KeyUsage bits, most significant first: digitalSignature(0), nonRepudiation(1),
  // keyEncipherment(2). 0b1010_0000 with the 5 trailing bits unused (DER: no trailing zeros).
  return new asn1js.BitString({ valueHex: new Uint8Array([0xa0]).buffer, unusedBits: 5 });
}

function altNames(sans: San[]): pkijs.GeneralNames {
  return new pkijs.GeneralNames({
    names: sans.map((san) =>
      san.type === "ip"
        ? new pkijs.GeneralName({ type: 7, value: new asn1js.OctetString({ valueHex: san.bytes.slice().buffer }) })
        : new pkijs.GeneralName({ type: 2, value: san.value }),
    ),
  });
}

/** A positive, non-zero 128-bit serial number (RFC 5280 allows up to 20 octets). */
function serialNumber(): asn1js.Integer {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
  return new asn1js.Integer({ valueHex: bytes.buffer });
}

function name(commonName: string): pkijs.RelativeDistinguishedNames {
  return new pkijs.RelativeDistinguishedNames({
    typesAndValues: [
      new pkijs.AttributeTypeAndValue({ type: OID.commonName, value: new asn1js.Utf8String({ value: commonName }) }),
    ],
  });
}

/** Generate a fresh self-signed ECDSA P-256 certificate and its PKCS#8 private key. */
export async function generateCertificate(opts: GenerateOptions = {}): Promise<GeneratedCertificate> {
  ensureEngine();
  // Validate SANs before spending time on the key.
  const sans = buildSans(opts.sans ?? []);
  const days = opts.days ?? 3650;
  const commonName = opts.commonName ?? "pythond";

  const keys = (await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
    "sign",
    "verify",
  ])) as CryptoKeyPair;

  const cert = new pkijs.Certificate();
  cert.version = 2; // X.509 v3
  cert.serialNumber = serialNumber();
  cert.subject = name(commonName);
  cert.issuer = name(commonName);
  // Back-date by an hour so that a peer whose clock is slightly behind accepts it at once.
  const now = Date.now();
  cert.notBefore.value = new Date(now - 3600_000);
  cert.notAfter.value = new Date(now + days * 86400_000);
  await cert.subjectPublicKeyInfo.importKey(keys.publicKey);

  // Subject key identifier: SHA-1 of the public key bits (RFC 5280 4.2.1.2 method 1).
  const spkBits = new Uint8Array(cert.subjectPublicKeyInfo.subjectPublicKey.valueBlock.valueHexView);
  const ski = new Uint8Array(await crypto.subtle.digest("SHA-1", spkBits));

  cert.extensions = [
    extension(OID.basicConstraints, true, new pkijs.BasicConstraints({ cA: false })),
    extension(OID.keyUsage, true, keyUsage()),
    extension(OID.extKeyUsage, false, new pkijs.ExtKeyUsage({ keyPurposes: [OID.serverAuth, OID.clientAuth] })),
    extension(OID.subjectAltName, false, altNames(sans)),
    extension(OID.subjectKeyIdentifier, false, new asn1js.OctetString({ valueHex: ski.buffer })),
  ];

  await cert.sign(keys.privateKey, "SHA-256");

  const certDer = new Uint8Array(cert.toSchema(true).toBER(false));
  const keyDer = new Uint8Array(await crypto.subtle.exportKey("pkcs8", keys.privateKey));
  return { certPem: derToPem(certDer, "CERTIFICATE"), keyPem: derToPem(keyDer, "PRIVATE KEY") };
}
