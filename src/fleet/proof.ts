/**
 * Proof of possession for node links that have no TLS (plain `ws://`, which only loopback
 * allows): the hub sends a fresh nonce, the node signs it with its key and sends its certificate;
 * the hub checks the signature against the certificate's public key and then treats the
 * certificate's fingerprint exactly as it treats a TLS client certificate's (bind or compare).
 *
 * Over TLS the hub uses the client certificate of the TLS handshake instead (mTLS: the TLS stack
 * has already verified that the peer holds its key), so this costs nothing there.
 *
 * The signed text names its purpose, the nonce and the claimed id, so a signature made for one
 * purpose or one id can serve no other.
 */
import * as asn1js from "asn1js";
import { pemToDer } from "../tls/pem.ts";

const ALG = { name: "ECDSA", namedCurve: "P-256" } as const;
const SIG = { name: "ECDSA", hash: "SHA-256" } as const;

function signedText(nonce: string, id: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(`pythond node link proof v1\n${nonce}\n${id}\n`);
}

export function newNonce(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(24))).toString("base64url");
}

export async function signNonce(keyPem: string, nonce: string, id: string): Promise<string> {
  const key = await crypto.subtle.importKey("pkcs8", pemToDer(keyPem, "PRIVATE KEY"), ALG, false, ["sign"]);
  return Buffer.from(await crypto.subtle.sign(SIG, key, signedText(nonce, id))).toString("base64");
}

/** The SubjectPublicKeyInfo of a certificate (DER), or null when it is not X.509-shaped. */
function spkiOf(der: Uint8Array): Uint8Array<ArrayBuffer> | null {
  const parsed = asn1js.fromBER(der);
  if (parsed.offset === -1) return null;
  const tbs = (parsed.result as asn1js.Sequence).valueBlock?.value?.[0] as asn1js.Sequence | undefined;
  const fields = tbs?.valueBlock?.value;
  if (!fields) return null;
  const hasVersion = fields[0]?.idBlock.tagClass === 3;
  const spki = fields[hasVersion ? 6 : 5];
  return spki instanceof asn1js.Sequence ? new Uint8Array(spki.toBER(false)) : null;
}

/** True when `sig` is the holder of `certPem`'s key signing this nonce for this id. */
export async function verifyProof(certPem: string, nonce: string, id: string, sig: string): Promise<boolean> {
  try {
    const spki = spkiOf(pemToDer(certPem));
    if (!spki) return false;
    const key = await crypto.subtle.importKey("spki", spki, ALG, false, ["verify"]);
    return await crypto.subtle.verify(SIG, key, Buffer.from(sig, "base64"), signedText(nonce, id));
  } catch {
    return false;
  }
}
