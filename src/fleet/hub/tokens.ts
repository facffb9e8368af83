/**
 * Join tokens on the hub (`pyctl join-token`): what lets a machine enroll as a node the first
 * time. Like an SSH host's authorized_keys they live in a private file the hub's user owns:
 *
 *   ~/.pythond/fleet/          0700
 *     tokens.json              0600  [{id, hash, created, expires, uses_max, uses, labels, revoked}]
 *
 * (`uses` is counted for tokens limited by --uses only.)
 *
 * A token is `<id>.<secret>` (8 + 64 hex digits). Only the SHA-256 of the whole token is stored,
 * so the file (or a backup of it) enrolls nobody. The id names the token in `--list` and
 * `--revoke` and finds its record without comparing secrets against every record.
 *
 * `pyctl` writes the file and the daemon reads it (and counts uses), both under one lock, so a
 * revocation takes effect on the next join without telling the daemon anything. The daemon
 * re-reads the file when its modification time changes.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { homeBase } from "../../paths.ts";
import { PythondError } from "../../protocol/errors.ts";
import type { RefusalReason } from "../../protocol/fleet.ts";
import { ensurePrivateDir, withLock, writeFileAtomic } from "../../tls/files.ts";

export interface TokenRecord {
  id: string;
  /** SHA-256 of the whole token, hex. */
  hash: string;
  created: string;
  expires: string;
  /** null: reusable until it expires. */
  uses_max: number | null;
  uses: number;
  /** Labels every node enrolled with this token gets (the admin's; they win over the node's). */
  labels: Record<string, string>;
  revoked?: string;
}

export interface NewToken {
  token: string;
  record: TokenRecord;
}

/** Records that stopped working this long ago are dropped from the file. */
const KEEP_DEAD_MS = 7 * 86400_000;

export function fleetDir(): string {
  return join(homeBase(), "fleet");
}

function hashOf(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

/** "24h", "30m", "7d", "90s" or plain seconds -> milliseconds. */
export function parseTtl(spec: string): number {
  const m = /^(\d+(?:\.\d+)?)([smhd]?)$/.exec(spec.trim());
  const unit = { "": 1000, s: 1000, m: 60_000, h: 3600_000, d: 86400_000 }[m?.[2] ?? ""];
  const ms = m ? Number(m[1]) * unit! : NaN;
  if (!(ms > 0) || ms > 3650 * 86400_000) throw new PythondError("usage", `--ttl takes a duration such as 30m, 24h or 7d (got ${JSON.stringify(spec)})`);
  return ms;
}

/** What a record's state is now: active, or why it no longer enrolls anyone. */
export function tokenState(r: TokenRecord, now = Date.now()): "active" | "revoked" | "expired" | "used up" {
  if (r.revoked) return "revoked";
  if (Date.parse(r.expires) <= now) return "expired";
  if (r.uses_max !== null && r.uses >= r.uses_max) return "used up";
  return "active";
}

export class TokenStore {
  private cache?: { mtimeMs: number; size: number; records: TokenRecord[] };

  constructor(readonly dir = fleetDir()) {}

  get path(): string {
    return join(this.dir, "tokens.json");
  }

  private lockDir(): string {
    return join(this.dir, ".tokens.lock");
  }

  /** The records on disk (cached while the file is unchanged). */
  read(): TokenRecord[] {
    let st;
    try {
      st = statSync(this.path);
    } catch {
      return [];
    }
    if (this.cache && this.cache.mtimeMs === st.mtimeMs && this.cache.size === st.size) return this.cache.records;
    let records: TokenRecord[] = [];
    try {
      const parsed = JSON.parse(readFileSync(this.path, "utf8")) as unknown;
      if (Array.isArray(parsed)) records = parsed as TokenRecord[];
    } catch {
      // A damaged file enrolls nobody (fails closed); the next write replaces it.
    }
    this.cache = { mtimeMs: st.mtimeMs, size: st.size, records };
    return records;
  }

  private write(records: TokenRecord[]): void {
    ensurePrivateDir(this.dir);
    const now = Date.now();
    const kept = records.filter((r) => {
      const state = tokenState(r, now);
      if (state === "active") return true;
      const since = r.revoked ? Date.parse(r.revoked) : state === "expired" ? Date.parse(r.expires) : now;
      return now - since < KEEP_DEAD_MS;
    });
    writeFileAtomic(this.path, JSON.stringify(kept, null, 1) + "\n", 0o600);
    this.cache = undefined;
  }

  private async update<T>(fn: (records: TokenRecord[]) => T): Promise<T> {
    ensurePrivateDir(this.dir);
    return withLock(this.lockDir(), async () => {
      this.cache = undefined;
      const records = this.read().map((r) => ({ ...r }));
      const out = fn(records);
      this.write(records);
      return out;
    });
  }

  async create(opts: { ttlMs: number; uses: number | null; labels: Record<string, string> }): Promise<NewToken> {
    const id = Buffer.from(crypto.getRandomValues(new Uint8Array(4))).toString("hex");
    const secret = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("hex");
    const token = `${id}.${secret}`;
    const now = Date.now();
    const record: TokenRecord = {
      id,
      hash: hashOf(token),
      created: new Date(now).toISOString(),
      expires: new Date(now + opts.ttlMs).toISOString(),
      uses_max: opts.uses,
      uses: 0,
      labels: opts.labels,
    };
    await this.update((records) => records.push(record));
    return { token, record };
  }

  async revoke(id: string): Promise<TokenRecord> {
    return this.update((records) => {
      const r = records.find((x) => x.id === id);
      if (!r) {
        const ids = records.filter((x) => tokenState(x) === "active").map((x) => x.id);
        throw new PythondError("usage", `no join token '${id}'${ids.length ? ` -- active: ${ids.join(", ")}` : " (there are none; see: pyctl join-token --list)"}`);
      }
      r.revoked ??= new Date().toISOString();
      return r;
    });
  }

  /**
   * Checks a presented token (constant time against the stored hash) and, when `consume`, counts
   * one use. Returns the record, or the refusal reason.
   */
  async redeem(token: string | undefined, consume: boolean): Promise<TokenRecord | RefusalReason> {
    if (!token) return "token_missing";
    const dot = token.indexOf(".");
    const id = dot > 0 ? token.slice(0, dot) : "";
    const check = (records: TokenRecord[]): TokenRecord | RefusalReason => {
      const r = records.find((x) => x.id === id);
      const want = Buffer.from(r?.hash ?? "0".repeat(64), "hex");
      const got = Buffer.from(hashOf(token), "hex");
      if (!r || !timingSafeEqual(want, got)) return "token_unknown";
      const state = tokenState(r);
      if (state === "revoked") return "token_revoked";
      if (state === "expired") return "token_expired";
      if (state === "used up") return "token_used_up";
      return r;
    };
    const quick = check(this.read());
    // Reusable tokens are not counted: 15,000 machines enrolling with one token would otherwise
    // rewrite this file 15,000 times under the lock. Limited ones are counted under the lock.
    if (typeof quick === "string" || !consume || quick.uses_max === null) return quick;
    return this.update((records) => {
      const r = check(records);
      if (typeof r !== "string") r.uses++;
      return r;
    });
  }
}

/** Human sentence for a refusal reason (what the node prints). */
export function tokenRefusalMessage(reason: RefusalReason): string {
  switch (reason) {
    case "token_missing":
      return "this node is not enrolled on the hub and no join token was given (--token; make one on the hub with: pyctl join-token)";
    case "token_unknown":
      return "the hub does not know this join token (make a new one on the hub with: pyctl join-token)";
    case "token_expired":
      return "the join token has expired (make a new one on the hub with: pyctl join-token)";
    case "token_revoked":
      return "the join token was revoked on the hub";
    case "token_used_up":
      return "the join token has been used as many times as it allows (--uses); make a new one with: pyctl join-token";
    default:
      return reason;
  }
}
