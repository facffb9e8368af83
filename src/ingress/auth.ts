/**
 * Authentication of TCP/TLS clients, decided before a connection reaches the dispatcher (like
 * sshd's pre-auth stage): the token, the trusted client certificates (mTLS), and a per-source
 * penalty for repeated failures.
 *
 * Why a penalty per source and not per connection: an attacker who opens many connections in
 * parallel would otherwise learn the answer to each guess at once. So each source address (an
 * IPv4 address, an IPv6 /64) carries a failure score that decays with time; past a few free
 * failures, a failing attempt is answered only after a growing delay, and a source may have only
 * a few such answers pending: further attempts from it are refused before their token is even
 * looked at (otherwise a right guess would come back fast and a wrong one slow). A client with the
 * right token from another address is never slowed; one from the same address is refused only
 * while that address has the maximum number of failures pending, as OpenSSH's PerSourcePenalties.
 *
 * Pure logic with an injectable clock, so the unit tests need no sockets and no waiting.
 */
import { timingSafeEqual } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { sha256 } from "@noble/hashes/sha2.js";
import { PythondError } from "../protocol/errors.ts";
import { AUTH_REJECTION } from "../protocol/replies.ts";
import { writeFileAtomic } from "../tls/files.ts";
import { fingerprintOfPem } from "../tls/pem.ts";
import { listTrustedClients, tlsDir } from "../tls/index.ts";

/** A fresh token: 32 random bytes as 64 lower-case hex digits. */
export function newToken(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("hex");
}

/**
 * The token of `--token-file PATH`: read when the file exists (it must be private, like an ssh
 * key), else generated and written there with mode 0600, so restarts keep the same token.
 */
export function loadOrCreateTokenFile(path: string): { token: string; created: boolean } {
  if (existsSync(path)) {
    const st = statSync(path);
    if (!st.isFile()) throw new PythondError("usage", `--token-file ${path}: not a file`);
    if (process.platform !== "win32" && (st.mode & 0o077) !== 0) {
      const mode = (st.mode & 0o777).toString(8);
      throw new PythondError("usage", `--token-file ${path} is readable by others (mode ${mode}); run: chmod 600 ${path}`);
    }
    const token = readFileSync(path, "utf8").trim();
    if (!/^[\x21-\x7e]{16,512}$/.test(token)) {
      throw new PythondError("usage", `--token-file ${path}: expected one token of 16 to 512 printable characters`);
    }
    return { token, created: false };
  }
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const token = newToken();
  writeFileAtomic(path, token + "\n", 0o600);
  return { token, created: true };
}

/** Constant-time comparison of a presented token with the expected one (any lengths). */
export function tokenMatches(expected: string, presented: string | null): boolean {
  if (presented === null) return false;
  // Hashing first gives equal lengths, so timingSafeEqual leaks neither content nor length.
  return timingSafeEqual(sha256(Buffer.from(expected)), sha256(Buffer.from(presented)));
}

/** The token of an `Authorization: Bearer <token>` header, or null. */
export function bearerToken(header: string | undefined): string | null {
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header ?? "");
  return m ? m[1]! : null;
}

/** Penalty tuning; the defaults are what the daemon uses. */
export interface PenaltyOptions {
  /** Failures a source may have before its failures are delayed (typos happen). */
  free?: number;
  /** One failure is forgotten per this many ms. */
  decayMs?: number;
  /** First delay once past `free`; doubles with each further failure. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Delayed failures a source may have pending before it is refused outright. */
  maxPending?: number;
  /** Sources remembered at most (the least recently seen are forgotten first). */
  maxSources?: number;
  now?: () => number;
}

interface SourceState {
  score: number;
  at: number;
  pending: number;
}

export type Admission = { refused: true } | { refused: false; failureDelayMs: number };

/** Per-source failure scores, delays and pending limits (see the file header). */
export class Penalties {
  private readonly o: Required<PenaltyOptions>;
  private sources = new Map<string, SourceState>();

  constructor(opts: PenaltyOptions = {}) {
    this.o = {
      free: 5,
      decayMs: 5_000,
      baseDelayMs: 100,
      maxDelayMs: 2_000,
      maxPending: 8,
      maxSources: 10_000,
      now: () => Date.now(),
      ...opts,
    };
  }

  /** The penalty key of an address: IPv4 as is, IPv6 by its /64 (one host often holds a /64). */
  static sourceOf(address: string): string {
    if (!address.includes(":")) return address;
    const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
    if (v4) return v4[1]!;
    const [head, tail = ""] = address.split("::");
    const h = head ? head.split(":") : [];
    const t = tail ? tail.split(":") : [];
    const groups = address.includes("::") ? [...h, ...Array<string>(8 - h.length - t.length).fill("0"), ...t] : h;
    return groups.slice(0, 4).map((g) => parseInt(g || "0", 16).toString(16)).join(":") + "::/64";
  }

  private state(source: string): SourceState {
    const now = this.o.now();
    let s = this.sources.get(source);
    if (!s) {
      if (this.sources.size >= this.o.maxSources) this.forgetOldest();
      s = { score: 0, at: now, pending: 0 };
    } else {
      s.score = Math.max(0, s.score - (now - s.at) / this.o.decayMs);
      s.at = now;
      this.sources.delete(source); // re-inserted below: Map order is then least recently seen first
    }
    this.sources.set(source, s);
    return s;
  }

  private forgetOldest(): void {
    for (const [k, s] of this.sources) {
      if (s.pending === 0) {
        this.sources.delete(k);
        return;
      }
    }
  }

  /** Before looking at the token: refused outright, or how long a failure would be delayed. */
  admit(source: string): Admission {
    const s = this.state(source);
    if (s.pending >= this.o.maxPending) {
      s.score += 1; // hammering while refused keeps the source in the box
      return { refused: true };
    }
    const over = Math.floor(s.score) - this.o.free + 1;
    const failureDelayMs = over <= 0 ? 0 : Math.min(this.o.maxDelayMs, this.o.baseDelayMs * 2 ** (over - 1));
    return { refused: false, failureDelayMs };
  }

  /** A failed attempt whose answer will be held back; call `done` once it has been answered. */
  failed(source: string): { done(): void } {
    const s = this.state(source);
    s.score += 1;
    s.pending += 1;
    let once = false;
    return {
      done: () => {
        if (once) return;
        once = true;
        s.pending -= 1;
      },
    };
  }

  /** For tests and the access log. */
  peek(source: string): { score: number; pending: number } {
    const s = this.state(source);
    return { score: s.score, pending: s.pending };
  }
}

/**
 * The fingerprints of ~/.pythond/tls/trusted_clients, re-read when the directory's listing or
 * mtime changes (`pyctl trust` renames a new file into it). So a newly trusted client is accepted
 * on its next connection, with no restart and no dropped connection. The listing is compared too
 * because some file systems keep mtimes to the second.
 */
export class TrustedClients {
  private stamp = "";
  private set = new Set<string>();

  constructor(private readonly dir: () => string = () => `${tlsDir()}/trusted_clients`) {}

  current(): ReadonlySet<string> {
    let stamp = "absent";
    try {
      const st = statSync(this.dir());
      stamp = `${st.mtimeMs}:${st.ino}:${readdirSync(this.dir()).sort().join(",")}`;
    } catch {}
    if (stamp !== this.stamp) {
      this.stamp = stamp;
      this.set = new Set(stamp === "absent" ? [] : listTrustedClients().map((pem) => fingerprintOfPem(pem)));
    }
    return this.set;
  }
}

/** What the listener knows about a client once its request head has arrived. */
export interface AuthFacts {
  /** Whether the connection is TLS (mTLS applies only there). */
  tls: boolean;
  /** "AA:BB:…" of the client certificate presented, or null. */
  clientCert: string | null;
  /** The `Authorization` header. */
  authorization: string | undefined;
}

/** Stable reasons, logged as `reason=` and mapped to the client's `ERR auth failed…` frame. */
export type AuthReason = "no_token" | "bad_token" | "client_cert_missing" | "client_cert_untrusted";

export type Verdict = { ok: true; method: "token" | "token_mtls" } | { ok: false; reason: AuthReason };

/** The text frame a rejected client receives before the close (1008). */
export function rejectionFrame(reason: AuthReason | "too_many_failures"): string {
  switch (reason) {
    case "client_cert_missing":
      return AUTH_REJECTION.certRequired;
    case "client_cert_untrusted":
      return AUTH_REJECTION.certUntrusted;
    case "too_many_failures":
      return AUTH_REJECTION.tooMany;
    default:
      return AUTH_REJECTION.plain;
  }
}

/**
 * mTLS first (once any client is trusted, a TLS client must present a trusted certificate), then
 * the token, which is always required.
 */
export function authorize(token: string, trusted: ReadonlySet<string>, f: AuthFacts): Verdict {
  const mtls = f.tls && trusted.size > 0;
  if (mtls && !f.clientCert) return { ok: false, reason: "client_cert_missing" };
  if (mtls && !trusted.has(f.clientCert!)) return { ok: false, reason: "client_cert_untrusted" };
  const presented = bearerToken(f.authorization);
  if (presented === null) return { ok: false, reason: "no_token" };
  if (!tokenMatches(token, presented)) return { ok: false, reason: "bad_token" };
  return { ok: true, method: mtls ? "token_mtls" : "token" };
}
