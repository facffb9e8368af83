/**
 * The one error type. Core code throws PythondError with a stable code; only the CLI layer prints
 * and chooses exit codes. The codes below are part of the wire contract: never rename one.
 *
 * On the wire an error is one text frame (replies.ts builds and parses it):
 *   pythond.0.4, pythond.1   `ERR <message>`            (byte for byte what they always were)
 *   pythond.1+codes          `ERR <code>: <message>`    (our clients ask for this one: the code
 *                                                       survives the trip, e.g. through a proxy)
 * The access log carries the code too. The TLS module's errors (tls_*) are PythondErrors as well.
 */
export const ERROR_CODES = {
  usage: "usage",
  unknown_command: "unknown_command",
  invalid_name: "invalid_name",
  no_session: "no_session",
  session_exists: "session_exists",
  session_dead: "session_dead",
  execution_failed: "execution_failed",
  auth_failed: "auth_failed",
  frame_too_large: "frame_too_large",
  binary_frame: "binary_frame",
  bad_frame: "bad_frame",
  worker_incompatible: "worker_incompatible",
  worker_start: "worker_start",
  daemon_running: "daemon_running",
  daemon_unreachable: "daemon_unreachable",
  io: "io",
  internal: "internal",
  not_local: "not_local",
  unknown_cell: "unknown_cell",
  timeout: "timeout",
  /** The file given to trust/pin does not exist or is not a regular file. */
  tls_no_file: "tls_no_file",
  /** The input is not a single, parseable PEM X.509 certificate. */
  tls_bad_cert: "tls_bad_cert",
  /** The certificate has basicConstraints CA:TRUE; trusting it would trust everything it signs. */
  tls_ca_refused: "tls_ca_refused",
  /** A fingerprint string is neither "AA:BB:…" nor 64 hex digits. */
  tls_bad_fingerprint: "tls_bad_fingerprint",
  /** A subjectAltName value cannot be put in a certificate. */
  tls_bad_san: "tls_bad_san",
  /** Another process holds the certificate generation lock for too long. */
  tls_locked: "tls_locked",
  /** Fleet: a name that is no node of this hub; a node that is offline. */
  no_node: "no_node",
  node_offline: "node_offline",
  // fleet: shell commands, files, shells, forwarding (src/fleet/)
  no_job: "no_job",
  no_shell: "no_shell",
  not_found: "not_found",
  is_directory: "is_directory",
  not_directory: "not_directory",
  permission_denied: "permission_denied",
  no_space: "no_space",
  checksum_mismatch: "checksum_mismatch",
  transfer_failed: "transfer_failed",
  connect_failed: "connect_failed",
} as const;
export type ErrorCode = keyof typeof ERROR_CODES;

export function isErrorCode(s: string): s is ErrorCode {
  return Object.hasOwn(ERROR_CODES, s);
}

export class PythondError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "PythondError";
  }
  /** The reply frame for this error: with the code for clients that asked for codes. */
  toFrame(codes = false): string {
    return codes ? `ERR ${this.code}: ${this.message}` : `ERR ${this.message}`;
  }
  toJSON() {
    return { code: this.code, message: this.message };
  }
  static from(e: unknown): PythondError {
    if (e instanceof PythondError) return e;
    const msg = e instanceof Error ? e.message : String(e);
    return new PythondError("internal", msg);
  }
}
