// src/tls: certificate generation, fingerprints, the trust/pin stores, and a real TLS round trip
// with Bun.serve. HOME points at a temporary directory for the whole file; openssl is the
// independent referee for what we generate.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { PythondError, type ErrorCode } from "../../src/protocol/errors.ts";
import {
  derToPem,
  ensureOwnCertificate,
  findPin,
  fingerprintHex,
  fingerprintOfPem,
  generateCertificate,
  isCaCertificate,
  listPinnedServers,
  listTrustedClients,
  normaliseFingerprint,
  pemToDer,
  pinServer,
  tlsDir,
  trustClient,
} from "../../src/tls/index.ts";

let oldHome: string | undefined;
let root: string; // holds the fake HOME and the scratch files
let scratch: string;

function openssl(args: string[], stdin?: string): string {
  const r = Bun.spawnSync(["openssl", ...args], { stdin: stdin === undefined ? "ignore" : Buffer.from(stdin) });
  if (r.exitCode !== 0) throw new Error(`openssl ${args.join(" ")}: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

function mode(path: string): number {
  return statSync(path).mode & 0o777;
}

/** Run `fn` expecting a PythondError with `code`; returns it for further checks. */
function expectPythondError(fn: () => unknown, code: ErrorCode): PythondError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(PythondError);
    expect((err as PythondError).code).toBe(code);
    return err as PythondError;
  }
  throw new Error(`expected PythondError ${code}`);
}

beforeAll(() => {
  oldHome = process.env.HOME;
  root = mkdtempSync(join(tmpdir(), "pythond-tls-test-"));
  mkdirSync(join(root, "home"));
  mkdirSync((scratch = join(root, "scratch")));
  process.env.HOME = join(root, "home");
});

afterAll(() => {
  if (oldHome === undefined) delete process.env.HOME;
  else process.env.HOME = oldHome;
  rmSync(root, { recursive: true, force: true });
});

describe("generateCertificate", () => {
  test("openssl parses it, with the promised extensions", async () => {
    const { certPem, keyPem } = await generateCertificate({ sans: ["10.1.2.3", "2001:db8::7", "node.example"] });
    expect(certPem).toStartWith("-----BEGIN CERTIFICATE-----\n");
    expect(keyPem).toStartWith("-----BEGIN PRIVATE KEY-----\n");
    const text = openssl(["x509", "-noout", "-text"], certPem);
    for (const want of [
      "Version: 3 (0x2)",
      "Subject: CN = pythond",
      "Issuer: CN = pythond",
      "ecdsa-with-SHA256",
      "NIST CURVE: P-256",
      "X509v3 Basic Constraints: critical",
      "CA:FALSE",
      "Digital Signature, Key Encipherment",
      "TLS Web Server Authentication, TLS Web Client Authentication",
      "DNS:localhost",
      "IP Address:127.0.0.1",
      "IP Address:0:0:0:0:0:0:0:1",
      `DNS:${hostname()}`,
      "IP Address:10.1.2.3",
      "IP Address:2001:DB8:0:0:0:0:0:7",
      "DNS:node.example",
    ]) {
      expect(text).toContain(want);
    }
    // ~10 years of validity.
    const end = new Date(openssl(["x509", "-noout", "-enddate"], certPem).trim().replace("notAfter=", ""));
    expect((end.getTime() - Date.now()) / 86400_000).toBeGreaterThan(3640);
    // The key is the certificate's key, and the certificate verifies as its own issuer.
    expect(openssl(["pkey", "-pubout"], keyPem)).toBe(openssl(["x509", "-noout", "-pubkey"], certPem));
    writeFileSync(join(scratch, "gen.pem"), certPem);
    openssl(["verify", "-CAfile", join(scratch, "gen.pem"), "-purpose", "sslserver", join(scratch, "gen.pem")]);
    expect(isCaCertificate(certPem)).toBe(false);
  });

  test("every certificate is fresh", async () => {
    const [a, b] = await Promise.all([generateCertificate(), generateCertificate()]);
    expect(a.certPem).not.toBe(b.certPem);
    expect(a.keyPem).not.toBe(b.keyPem);
  });

  test("a SAN that is neither a name nor an IP is refused", async () => {
    await expect(generateCertificate({ sans: ["not a name"] })).rejects.toMatchObject({ code: "tls_bad_san" });
  });
});

describe("fingerprints", () => {
  test("match openssl, in both forms", async () => {
    const { certPem } = await generateCertificate();
    const fromOpenssl = openssl(["x509", "-noout", "-fingerprint", "-sha256"], certPem).trim().split("=")[1]!;
    const fp = fingerprintOfPem(certPem);
    expect(fp).toBe(fromOpenssl);
    expect(fp).toMatch(/^[0-9A-F]{2}(:[0-9A-F]{2}){31}$/);
    expect(fingerprintHex(certPem)).toBe(fp.replaceAll(":", "").toLowerCase());
    expect(fingerprintOfPem(pemToDer(certPem))).toBe(fp);
  });

  test("PEM <-> DER round trip", async () => {
    const { certPem } = await generateCertificate();
    expect(derToPem(pemToDer(certPem))).toBe(certPem);
    expect(() => pemToDer("hello")).toThrow(PythondError);
  });

  test("normaliseFingerprint accepts either form and rejects junk", () => {
    const colon = Array.from({ length: 32 }, (_, i) => (i * 7).toString(16).padStart(2, "0").toUpperCase()).join(":");
    expect(normaliseFingerprint(colon)).toBe(colon);
    expect(normaliseFingerprint(colon.toLowerCase())).toBe(colon);
    expect(normaliseFingerprint(colon.replaceAll(":", "").toLowerCase())).toBe(colon);
    expect(normaliseFingerprint(`sha256 Fingerprint=${colon}\n`)).toBe(colon);
    expectPythondError(() => normaliseFingerprint("AA:BB"), "tls_bad_fingerprint");
    expectPythondError(() => normaliseFingerprint("z".repeat(64)), "tls_bad_fingerprint");
  });
});

describe("own certificate store", () => {
  test("generated on first use with the right modes, reused after", async () => {
    const first = await ensureOwnCertificate();
    expect(first.created).toBe(true);
    expect(first.certPath).toBe(join(process.env.HOME!, ".pythond", "tls", "cert.pem"));
    expect(first.keyPath).toBe(join(tlsDir(), "key.pem"));
    expect(mode(tlsDir())).toBe(0o700);
    expect(mode(first.certPath)).toBe(0o644);
    expect(mode(first.keyPath)).toBe(0o600);
    expect(first.fingerprint).toBe(fingerprintOfPem(first.certPem));
    // No temporary files or lock left behind.
    expect(readdirSync(tlsDir()).sort()).toEqual(["cert.pem", "key.pem"]);

    const again = await ensureOwnCertificate({ sans: ["ignored.example"] });
    expect(again.created).toBe(false);
    expect(again.fingerprint).toBe(first.fingerprint);
    expect(again.keyPem).toBe(first.keyPem);
  });

  test("concurrent first use yields one matching pair", async () => {
    const saved = process.env.HOME;
    process.env.HOME = mkdtempSync(join(root, "race-"));
    try {
      const all = await Promise.all([ensureOwnCertificate(), ensureOwnCertificate(), ensureOwnCertificate()]);
      expect(all.filter((c) => c.created)).toHaveLength(1);
      expect(new Set(all.map((c) => c.fingerprint)).size).toBe(1);
      const { certPath, keyPath } = all[0]!;
      expect(openssl(["pkey", "-pubout", "-in", keyPath])).toBe(openssl(["x509", "-noout", "-pubkey", "-in", certPath]));
    } finally {
      process.env.HOME = saved;
    }
  });
});

describe("trust and pin stores", () => {
  let peerPath: string;
  let peerFp: string;

  beforeAll(async () => {
    const peer = await generateCertificate();
    peerPath = join(scratch, "peer.pem");
    // Comments and a private key in the same file are tolerated, and never copied.
    writeFileSync(peerPath, `some comment\n${peer.certPem}${peer.keyPem}`);
    peerFp = fingerprintOfPem(peer.certPem);
  });

  test("trustClient stores <fp16>.pem and lists it", () => {
    expect(trustClient(peerPath)).toBe(peerFp);
    const file = join(tlsDir(), "trusted_clients", `${fingerprintHex(readPeer()).slice(0, 16)}.pem`);
    expect(statSync(file).isFile()).toBe(true);
    expect(mode(file)).toBe(0o644);
    expect(mode(join(tlsDir(), "trusted_clients"))).toBe(0o700);
    const listed = listTrustedClients();
    expect(listed).toHaveLength(1);
    expect(listed[0]).not.toContain("PRIVATE KEY");
    expect(fingerprintOfPem(listed[0]!)).toBe(peerFp);
    // Idempotent.
    expect(trustClient(peerPath)).toBe(peerFp);
    expect(listTrustedClients()).toHaveLength(1);
  });

  test("pinServer stores <fp16>.pem; findPin accepts either form", () => {
    expect(pinServer(peerPath)).toBe(peerFp);
    const hex = peerFp.replaceAll(":", "").toLowerCase();
    expect(readdirSync(join(tlsDir(), "trusted_servers"))).toEqual([`${hex.slice(0, 16)}.pem`]);
    expect(listPinnedServers().map((p) => p.fingerprint)).toEqual([peerFp]);
    expect(findPin(peerFp)?.fingerprint).toBe(peerFp);
    expect(findPin(hex)?.pem).toContain("BEGIN CERTIFICATE");
    expect(findPin("00".repeat(32))).toBeNull();
  });

  test("a CA:TRUE certificate is refused", () => {
    const caPath = join(scratch, "ca.pem");
    openssl([
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=ca",
      "-addext", "basicConstraints=critical,CA:TRUE", "-days", "1",
      "-keyout", join(scratch, "ca.key"), "-out", caPath,
    ]);
    expect(isCaCertificate(readFileSync(caPath, "utf8"))).toBe(true);
    const before = { clients: listTrustedClients().length, servers: listPinnedServers().length };
    expect(expectPythondError(() => trustClient(caPath), "tls_ca_refused").message).toContain("CA:TRUE");
    expectPythondError(() => pinServer(caPath), "tls_ca_refused");
    expect(listTrustedClients()).toHaveLength(before.clients);
    expect(listPinnedServers()).toHaveLength(before.servers);
  });

  test("missing files, non-PEM files, keys and bundles are refused", () => {
    expectPythondError(() => trustClient(join(scratch, "nope.pem")), "tls_no_file");
    expectPythondError(() => pinServer(scratch), "tls_no_file");
    const junk = join(scratch, "junk.pem");
    writeFileSync(junk, "this is not a certificate\n");
    expectPythondError(() => trustClient(junk), "tls_bad_cert");
    const der = join(scratch, "cert.der");
    writeFileSync(der, pemToDer(readPeer()));
    expectPythondError(() => pinServer(der), "tls_bad_cert");
    const keyOnly = join(scratch, "key-only.pem");
    writeFileSync(keyOnly, Bun.spawnSync(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]).stdout);
    expectPythondError(() => trustClient(keyOnly), "tls_bad_cert");
    const garbled = join(scratch, "garbled.pem");
    writeFileSync(garbled, derToPem(new TextEncoder().encode("definitely not DER")));
    expectPythondError(() => trustClient(garbled), "tls_bad_cert");
    const bundle = join(scratch, "bundle.pem");
    writeFileSync(bundle, readPeer() + readPeer());
    expect(expectPythondError(() => pinServer(bundle), "tls_bad_cert").message).toContain("2 certificates");
  });

  function readPeer(): string {
    return readFileSync(peerPath, "utf8");
  }
});
