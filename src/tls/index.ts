/**
 * TLS material: this machine's self-signed certificate, fingerprints, and the trust (mTLS
 * clients) and pin (servers) stores in ~/.pythond/tls.
 *
 * Importing this index loads asn1js and @noble/hashes but not pkijs: certificate generation is
 * imported lazily by ensureOwnCertificate, or on demand through generateCertificate below.
 */
import type { GeneratedCertificate, GenerateOptions } from "./cert.ts";

/** Errors: PythondError with the tls_* codes (src/protocol/errors.ts). */
export {
  derToPem,
  fingerprintHex,
  fingerprintOfPem,
  isCaCertificate,
  normaliseFingerprint,
  pemToDer,
  subjectAltNames,
} from "./fingerprint.ts";
export { missingSans } from "./san.ts";
export {
  ensureOwnCertificate,
  findPin,
  listPinnedServers,
  listTrustedClients,
  pinServer,
  tlsDir,
  trustClient,
  type OwnCertificate,
  type PinnedServer,
} from "./store.ts";
export type { GeneratedCertificate, GenerateOptions };

/** Generate a fresh self-signed ECDSA P-256 certificate (see cert.ts); loads pkijs on first call. */
export async function generateCertificate(opts?: GenerateOptions): Promise<GeneratedCertificate> {
  return (await import("./cert.ts")).generateCertificate(opts);
}
