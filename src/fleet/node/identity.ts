/**
 * A node's own identity, kept on the node:
 *
 *   ~/.pythond/node/            0700
 *     id                        0600  the node id (given with --id, else generated once)
 *     key.pem / cert.pem        0600 / 0644  the node's key and self-signed certificate, made at
 *                                     its first join; presented as the TLS client certificate
 *     hub.json                  0600  {url, fingerprint} of the hub it joined (a later
 *                                     `pythond join` without arguments goes there again)
 *     hub.pem                   0644  the hub's certificate, once checked against the fingerprint
 *
 * The key never leaves the machine; the hub learns the certificate's fingerprint at enrollment and
 * from then on accepts this id only with this key.
 */
import { existsSync, readFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { homeBase } from "../../paths.ts";
import { PythondError } from "../../protocol/errors.ts";
import { checkNodeId, isValidNodeId } from "../../protocol/fleet.ts";
import { ensurePrivateDir, isFile, withLock, writeFileAtomic } from "../../tls/files.ts";
import { fingerprintOfPem } from "../../tls/pem.ts";

export interface NodeKey {
  certPem: string;
  keyPem: string;
  fingerprint: string;
}

export function nodeDir(): string {
  return join(homeBase(), "node");
}

/**
 * The node id: `--id` when given (and then kept), else the one kept from before, else a new one
 * made from the host name and six random hex digits. A different --id than the kept one is
 * refused: the hub knows this machine by its id, and a silent change would enroll a second node.
 */
export function resolveNodeId(given: string | undefined, opts: { replace?: boolean } = {}): { id: string; created: boolean } {
  const dir = ensurePrivateDir2(nodeDir());
  const path = join(dir, "id");
  const kept = existsSync(path) ? readFileSync(path, "utf8").trim() : "";
  if (given !== undefined) {
    checkNodeId(given);
    if (kept && kept !== given && !opts.replace) {
      throw new PythondError(
        "usage",
        `this machine already joined as node '${kept}' (${path}); to join as '${given}' instead, remove that file first`,
      );
    }
    if (kept !== given) writeFileAtomic(path, given + "\n", 0o600);
    return { id: given, created: kept !== given };
  }
  if (kept && isValidNodeId(kept)) return { id: kept, created: false };
  const base = hostname().split(".")[0]!.toLowerCase().replace(/[^a-z0-9-]/g, "-").replace(/^-+|-+$/g, "").slice(0, 40);
  const id = `${base || "node"}-${Buffer.from(crypto.getRandomValues(new Uint8Array(3))).toString("hex")}`;
  writeFileAtomic(path, id + "\n", 0o600);
  return { id, created: true };
}

function ensurePrivateDir2(dir: string): string {
  ensurePrivateDir(join(dir, ".."));
  ensurePrivateDir(dir);
  return dir;
}

/** The node's key and certificate, made on first use (pkijs, loaded only then). */
export async function ensureNodeKey(id: string): Promise<NodeKey> {
  const dir = ensurePrivateDir2(nodeDir());
  const certPath = join(dir, "cert.pem");
  const keyPath = join(dir, "key.pem");
  const read = (): NodeKey => {
    const certPem = readFileSync(certPath, "utf8");
    return { certPem, keyPem: readFileSync(keyPath, "utf8"), fingerprint: fingerprintOfPem(certPem) };
  };
  if (isFile(certPath) && isFile(keyPath)) return read();
  return withLock(join(dir, ".generate.lock"), async () => {
    if (isFile(certPath) && isFile(keyPath)) return read();
    const { generateCertificate } = await import("../../tls/cert.ts");
    const { certPem, keyPem } = await generateCertificate({ commonName: `pythond-node ${id}` });
    writeFileAtomic(keyPath, keyPem, 0o600);
    writeFileAtomic(certPath, certPem, 0o644);
    return read();
  });
}

export interface HubRecord {
  url: string;
  fingerprint: string;
}

export function readHubRecord(): HubRecord | null {
  try {
    const r = JSON.parse(readFileSync(join(nodeDir(), "hub.json"), "utf8")) as HubRecord;
    return typeof r.url === "string" && typeof r.fingerprint === "string" ? r : null;
  } catch {
    return null;
  }
}

export function writeHubRecord(r: HubRecord, hubPem?: string): void {
  const dir = ensurePrivateDir2(nodeDir());
  writeFileAtomic(join(dir, "hub.json"), JSON.stringify(r) + "\n", 0o600);
  if (hubPem) writeFileAtomic(join(dir, "hub.pem"), hubPem, 0o644);
}

/** The hub certificate kept from an earlier join, when its fingerprint is the expected one. */
export function keptHubPem(fingerprint: string): string | null {
  try {
    const pem = readFileSync(join(nodeDir(), "hub.pem"), "utf8");
    return fingerprintOfPem(pem) === fingerprint ? pem : null;
  } catch {
    return null;
  }
}
