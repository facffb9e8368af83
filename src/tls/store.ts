/**
 * The TLS material on disk, like ~/.ssh:
 *
 *   ~/.pythond/tls/                 0700
 *     cert.pem                      0644  this machine's certificate (server and client role)
 *     key.pem                       0600  its PKCS#8 private key
 *     trusted_clients/<fp16>.pem    0644  `pyctl trust`: client certificates allowed by mTLS
 *     trusted_servers/<fp16>.pem    0644  `pyctl pin`:   server certificates this client accepts
 *
 * <fp16> is the first 16 hex digits (lower case) of the SHA-256 fingerprint. Trusting or pinning
 * the same certificate twice rewrites the same file. Only single leaf certificates are accepted:
 * a CA:TRUE certificate would extend trust to every certificate its key signs.
 *
 * $HOME is read at each call, so tests (and `HOME=… pyctl`) can point it elsewhere.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { PythondError } from "../protocol/errors.ts";
import {
  derToPem,
  fingerprintHex,
  fingerprintOfPem,
  isCaCertificate,
  normaliseFingerprint,
  singleCertificateDer,
} from "./fingerprint.ts";
import { tlsDirPath } from "./dir.ts";
import { ensurePrivateDir, isFile, withLock, writeFileAtomic } from "./files.ts";

export interface OwnCertificate {
  certPath: string;
  keyPath: string;
  certPem: string;
  keyPem: string;
  /** "AA:BB:…" SHA-256 of cert.pem. */
  fingerprint: string;
  /** True when this call generated the pair; false when it was already on disk. */
  created: boolean;
}

export interface PinnedServer {
  fingerprint: string;
  pem: string;
}

/** ~/.pythond/tls, from $HOME at call time. */
export function tlsDir(): string {
  return tlsDirPath();
}

const TRUSTED_CLIENTS = "trusted_clients";
const PINNED_SERVERS = "trusted_servers";

function readOwn(certPath: string, keyPath: string, created: boolean): OwnCertificate {
  const certPem = readFileSync(certPath, "utf8");
  const keyPem = readFileSync(keyPath, "utf8");
  let fingerprint: string;
  try {
    fingerprint = fingerprintOfPem(certPem);
  } catch (err) {
    throw new PythondError("tls_bad_cert", `${certPath}: ${(err as Error).message}`);
  }
  return { certPath, keyPath, certPem, keyPem, fingerprint, created };
}

/**
 * This machine's certificate and key, generated on first use and reused afterwards. `sans`
 * (extra subjectAltNames) only matter when the pair is generated; peers pin the certificate
 * itself, so an existing one is never replaced behind their back.
 */
export async function ensureOwnCertificate(opts: { sans?: string[] } = {}): Promise<OwnCertificate> {
  const dir = tlsDir();
  const certPath = join(dir, "cert.pem");
  const keyPath = join(dir, "key.pem");
  if (isFile(certPath) && isFile(keyPath)) return readOwn(certPath, keyPath, false);

  ensurePrivateDir(join(dir, ".."));
  ensurePrivateDir(dir);
  return withLock(join(dir, ".generate.lock"), async () => {
    if (isFile(certPath) && isFile(keyPath)) return readOwn(certPath, keyPath, false);
    // Loaded here, not at the top: pkijs costs tens of milliseconds and is needed once per machine.
    const { generateCertificate } = await import("./cert.ts");
    const { certPem, keyPem } = await generateCertificate({ sans: opts.sans });
    // Key first: a cert.pem on disk then always has its key beside it.
    writeFileAtomic(keyPath, keyPem, 0o600);
    writeFileAtomic(certPath, certPem, 0o644);
    return readOwn(certPath, keyPath, true);
  });
}

function readCertificateFile(pemPath: string): string {
  try {
    return readFileSync(pemPath, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new PythondError("tls_no_file", `no such file: ${pemPath}`);
    if (code === "EISDIR") throw new PythondError("tls_no_file", `not a file: ${pemPath}`);
    throw new PythondError("tls_no_file", `cannot read ${pemPath}: ${(err as Error).message}`);
  }
}

/** Validate `pemPath` as one leaf certificate and store it under `sub`; returns "AA:BB:…". */
function addCertificate(sub: string, pemPath: string): string {
  const text = readCertificateFile(pemPath);
  let der: Uint8Array;
  try {
    der = singleCertificateDer(text);
  } catch (err) {
    throw new PythondError("tls_bad_cert", `${pemPath}: not a PEM certificate (${(err as Error).message})`);
  }
  if (isCaCertificate(der)) {
    throw new PythondError(
      "tls_ca_refused",
      `${pemPath}: refusing a CA certificate (basicConstraints CA:TRUE); ` +
        `use the peer's own certificate (~/.pythond/tls/cert.pem on that machine)`,
    );
  }
  const dir = join(tlsDir(), sub);
  ensurePrivateDir(tlsDir());
  ensurePrivateDir(dir);
  // Re-encoded from the DER: drops any private key or comments that shared the input file.
  writeFileAtomic(join(dir, `${fingerprintHex(der).slice(0, 16)}.pem`), derToPem(der), 0o644);
  return fingerprintOfPem(der);
}

/** `pyctl trust`: allow this client certificate (mTLS). Returns its fingerprint "AA:BB:…". */
export function trustClient(pemPath: string): string {
  return addCertificate(TRUSTED_CLIENTS, pemPath);
}

/** `pyctl pin`: accept this server certificate. Returns its fingerprint "AA:BB:…". */
export function pinServer(pemPath: string): string {
  return addCertificate(PINNED_SERVERS, pemPath);
}

/** The parseable certificates stored under `sub`, in file-name order. Unreadable files are skipped. */
function listStore(sub: string): PinnedServer[] {
  const dir = join(tlsDir(), sub);
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith(".pem")).sort();
  } catch {
    return [];
  }
  const out: PinnedServer[] = [];
  for (const name of names) {
    try {
      const pem = readFileSync(join(dir, name), "utf8");
      out.push({ fingerprint: fingerprintOfPem(singleCertificateDer(pem)), pem });
    } catch {
      // A damaged file trusts nobody; skipping it fails closed.
    }
  }
  return out;
}

/** PEM texts of the trusted client certificates (for the listener's `ca` list). */
export function listTrustedClients(): string[] {
  return listStore(TRUSTED_CLIENTS).map((c) => c.pem);
}

/** The pinned server certificates. */
export function listPinnedServers(): PinnedServer[] {
  return listStore(PINNED_SERVERS);
}

/** The pinned server certificate with this fingerprint (either form), or null. */
export function findPin(fingerprint: string): PinnedServer | null {
  const want = normaliseFingerprint(fingerprint);
  return listPinnedServers().find((p) => p.fingerprint === want) ?? null;
}
