/**
 * The one error type. Core code throws PythondError with a stable code; only the CLI layer prints
 * and chooses exit codes. On the wire an error is the text frame `ERR <message>`; the code travels
 * in our subprotocol's replies and in the access log, never instead of the message users match on.
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

export class PythondError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "PythondError";
  }
  /** The reply frame for this error. */
  toFrame(): string {
    return `ERR ${this.message}`;
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
