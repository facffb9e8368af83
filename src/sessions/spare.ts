/**
 * A warm spare worker, so that `new` costs one message instead of starting Python.
 *
 * Starting a session is mostly starting an interpreter (~60-80 ms for python3 here, ~150 ms
 * through a pyenv shim) plus the worker's own set-up. Once a daemon has created a session, the
 * registry keeps one spare worker started ahead of time with the default interpreter; the next
 * `new` without --python claims it (worker op `claim`: it takes the session's name, socket path,
 * record, directory, history and idle timeout) and another spare starts in the background.
 *
 * A spare lives in `<runtime>/spares/`, never among the sessions, so it is never adopted, listed
 * or counted; it ends when its daemon lets go of it or dies (the worker watches for both).
 * PYTHOND_SPARE=0 turns spares off.
 */
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { sessionDataDir } from "../paths.ts";
import { WorkerLink } from "../worker/link.ts";
import { spawnWorker, workerPaths, type Spawned } from "../worker/spawn.ts";
import { isAlive } from "./alive.ts";

interface Spare {
  spawned: Spawned;
  link: WorkerLink;
  pgid: number;
}

export class SparePool {
  private next?: Promise<Spare | null>;
  private readonly idle = new Set<Spare>();
  private closed = false;
  private readonly enabled = process.env.PYTHOND_SPARE !== "0";

  constructor(private readonly runtime: string) {
    this.removeStale();
  }

  /** Files of spares that died without cleaning up (SIGKILL): a spare never outlives its daemon. */
  private removeStale(): void {
    const dir = join(this.runtime, "spares");
    let files: string[] = [];
    try {
      files = readdirSync(dir).filter((f) => f.endsWith(".json"));
    } catch {
      return;
    }
    for (const f of files) {
      try {
        const r = JSON.parse(readFileSync(join(dir, f), "utf8")) as { pid: number; sock: string };
        if (isAlive(r.pid)) continue; // still on its way out
        rmSync(r.sock, { force: true });
        rmSync(join(dir, f), { force: true });
      } catch {}
    }
  }

  /** Starts a spare unless one is ready or starting. */
  refill(): void {
    if (!this.enabled || this.closed || this.next) return;
    this.next = this.start().catch(() => null);
  }

  private async start(): Promise<Spare | null> {
    const name = `spare-${randomBytes(6).toString("hex")}`;
    const spawned = await spawnWorker({ name, runtime: this.runtime, spare: true });
    let spare: Spare;
    try {
      const record = JSON.parse(readFileSync(spawned.recordPath, "utf8")) as { sock: string; secret: string; pgid: number };
      spare = { spawned, link: await WorkerLink.connect(record.sock, record.secret), pgid: record.pgid };
    } catch (e) {
      try {
        process.kill(-spawned.pid, "SIGKILL"); // a spare we cannot talk to would wait for us forever
      } catch {}
      throw e;
    }
    this.idle.add(spare);
    if (this.closed) this.end(spare);
    return spare;
  }

  /**
   * Turns the spare (ready, or still starting: waiting for it beats starting another) into the
   * session `name`. Returns what the registry needs, or null when there is no usable spare.
   */
  async claim(name: string, opts: { cwd?: string; idleTimeout?: number }): Promise<{ spawned: Spawned; link: WorkerLink } | null> {
    const next = this.next;
    this.next = undefined;
    const spare = next ? await next : null;
    if (!spare || !this.idle.delete(spare) || spare.link.closed) return null;
    const { sock, record } = workerPaths(this.runtime, name);
    const session = { name, sock, record, session_dir: sessionDataDir(name), cwd: opts.cwd ?? process.cwd(), idle_timeout: opts.idleTimeout ?? null };
    try {
      const h = await spare.link.request("claim", { session });
      if (!h.ok) throw new Error(String(h.error));
    } catch {
      this.end(spare);
      return null;
    }
    return { spawned: { ...spare.spawned, recordPath: record }, link: spare.link };
  }

  /** Ends every spare (pyctl stop); none is started after this. */
  close(): void {
    this.closed = true;
    for (const s of this.idle) this.end(s);
  }

  private end(s: Spare): void {
    this.idle.delete(s);
    s.link.close(); // an unclaimed spare ends when its daemon lets go of it...
    try {
      process.kill(-s.pgid, "SIGKILL"); // ...and pyctl stop does not wait for that
    } catch {}
  }
}
