/**
 * The shared types of ingress (TCP/TLS access): what `pythond daemon` / `pyctl start` ask for,
 * and the addresses it listens on. Here, apart, so that remote-setup.ts (which builds a
 * RemoteAccess) and listen-tcp.ts (which is one) do not import each other.
 */

/** Options of `pythond daemon` / `pyctl start` for TCP access. */
export interface RemoteOptions {
  /** `--listen` values, HOST:PORT (repeatable). */
  listen: string[];
  /** `--tls`: TLS even on loopback (non-loopback addresses always get TLS). */
  tls: boolean;
  /** `--show-token`: print the token and the certificate fingerprint on stderr. */
  showToken: boolean;
  /** `--token-file PATH`: keep the token there across restarts (0600). */
  tokenFile?: string;
  /** `--san`: extra subjectAltNames, used when the certificate is first generated. */
  sans: string[];
  /** Local TCP mode (Windows; PYTHOND_LOCAL_TCP=1 elsewhere): loopback TCP + token + daemon.json. */
  localTcp: boolean;
}

export interface ListenAddress {
  host: string;
  port: number;
  loopback: boolean;
  tls: boolean;
  /** The local TCP mode's listener: its clients count as local (see RemoteAccess.fromBridge). */
  local?: boolean;
}
