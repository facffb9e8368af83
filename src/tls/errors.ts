/**
 * The one error type of the TLS module. Core code throws it; the caller (CLI or daemon) maps
 * `code` onto the project's error type and chooses how to print it. Codes are stable strings.
 */

/** Stable codes thrown by src/tls. */
export type TlsErrorCode =
  /** The file given to trust/pin does not exist or is not a regular file. */
  | "tls_no_file"
  /** The input is not a single, parseable PEM X.509 certificate. */
  | "tls_bad_cert"
  /** The certificate has basicConstraints CA:TRUE; trusting it would trust everything it signs. */
  | "tls_ca_refused"
  /** A fingerprint string is neither "AA:BB:…" nor 64 hex digits. */
  | "tls_bad_fingerprint"
  /** A subjectAltName value cannot be put in a certificate. */
  | "tls_bad_san"
  /** Another process holds the generation lock for too long. */
  | "tls_locked";

export class TlsError extends Error {
  readonly code: TlsErrorCode;

  constructor(code: TlsErrorCode, message: string) {
    super(message);
    this.name = "TlsError";
    this.code = code;
  }

  toJSON(): { code: TlsErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}
