/**
 * Which key each node id belongs to, on the hub: the lesson of the seed (anyone could register
 * any daemon id) and of Salt's CVE-2020-11651. At a node's first join (with a join token) the hub
 * binds its id to the fingerprint of the certificate it presented; from then on a link claiming
 * that id must present that certificate (mTLS), and a join token no longer matters for it.
 *
 *   ~/.pythond/fleet/nodes/<id>.json   0600  {id, fingerprint, enrolled, token_id, labels}
 *
 * One file per node: enrolling 15,000 nodes then writes 15,000 small files, not one growing file
 * 15,000 times. Written atomically (temporary file + rename), off the event loop (asynchronous
 * file calls: written synchronously, they took 0.6 ms of the hub's one thread per enrollment) and
 * without an fsync each: a binding lost to a crash in the next moment, or a power cut, only means
 * that node enrolls again with a token. `pyctl node forget ID` removes one.
 */
import { mkdirSync, readdirSync, readFileSync, unlinkSync } from "node:fs";
import { rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { isValidNodeId } from "../../protocol/fleet.ts";
import { ensurePrivateDir } from "../../tls/files.ts";
import { fleetDir } from "./tokens.ts";

export interface Binding {
  id: string;
  /** "AA:BB:…" of the node's certificate. */
  fingerprint: string;
  enrolled: string;
  token_id: string;
  /** The token's labels, fixed at enrollment (the admin's); the node's own come with each hello. */
  labels: Record<string, string>;
}

function unlinkQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch {}
}

export class Bindings {
  private map = new Map<string, Binding>();
  private writing = new Set<Promise<unknown>>();
  private seq = 0;
  private dirReady = false;
  readonly dir: string;

  constructor(base = fleetDir()) {
    this.dir = join(base, "nodes");
  }

  /** Reads every binding (once, at start). Damaged files bind nothing (a node then re-enrolls). */
  load(): number {
    let names: string[] = [];
    try {
      names = readdirSync(this.dir).filter((n) => n.endsWith(".json"));
    } catch {
      return 0;
    }
    for (const n of names) {
      try {
        const b = JSON.parse(readFileSync(join(this.dir, n), "utf8")) as Binding;
        if (isValidNodeId(b.id) && `${b.id}.json` === n && /^[0-9A-F:]{95}$/.test(b.fingerprint)) this.map.set(b.id, b);
      } catch {}
    }
    return this.map.size;
  }

  get(id: string): Binding | undefined {
    return this.map.get(id);
  }

  ids(): string[] {
    return [...this.map.keys()];
  }

  get size(): number {
    return this.map.size;
  }

  bind(b: Binding): void {
    if (!this.dirReady) {
      ensurePrivateDir(this.dir);
      this.dirReady = true;
    }
    this.map.set(b.id, b);
    const path = join(this.dir, `${b.id}.json`);
    const tmp = `${path}.${process.pid}.${this.seq++}.tmp`;
    const write = writeFile(tmp, JSON.stringify(b) + "\n", { mode: 0o600 }).then(() => {
      // a forget (or a newer binding) meanwhile wins: this one is not renamed into place
      if (this.map.get(b.id) === b) return rename(tmp, path);
      return unlinkQuiet(tmp);
    });
    this.writing.add(write);
    void write.catch(() => {}).finally(() => this.writing.delete(write));
  }

  /** Resolves once every binding made so far is on disk (tests, shutdown). */
  async flushed(): Promise<void> {
    await Promise.allSettled([...this.writing]);
  }

  /** Unbinds an id (the node must enroll again with a token); false when it was not bound. */
  forget(id: string): boolean {
    const had = this.map.delete(id);
    try {
      unlinkSync(join(this.dir, `${id}.json`));
      return true;
    } catch {
      return had;
    }
  }
}

/** `pyctl node forget` without a running hub: remove the file. */
export function forgetOnDisk(id: string): boolean {
  const b = new Bindings();
  mkdirSync(b.dir, { recursive: true, mode: 0o700 });
  return b.forget(id);
}
