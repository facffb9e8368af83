/**
 * The session registry: name -> worker. The daemon holds no Python state; a session is a worker
 * process (recorded in `<runtime>/sessions/<name>.json`) and the daemon's link to it.
 *
 * A session whose worker dies stays listed as dead, with the reason, until it is killed or a
 * `new` takes its name: an agent that finds its namespace gone should learn why.
 */
import { readFileSync, unlinkSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { PythondError } from "../protocol/errors.ts";
import type { WorkerRecord } from "../protocol/worker.ts";
import { WorkerLink } from "../worker/link.ts";
import { spawnWorker, workerPaths } from "../worker/spawn.ts";
import { isAlive } from "./alive.ts";
import { processState } from "./health.ts";
import { SparePool } from "./spare.ts";

export interface Session {
  name: string;
  /** incompatible: a live worker of another pythond version that this daemon cannot talk to. */
  state: "starting" | "alive" | "dead" | "incompatible";
  pid: number;
  link?: WorkerLink;
  record?: WorkerRecord;
  reason?: string;
  /** Set while this daemon is the worker's parent: the exit description. */
  exited?: Promise<string>;
  /** When a `status` to the worker went unanswered (src/sessions/health.ts). */
  unresponsiveSince?: number;
  /** The next attempt to adopt a worker that did not answer yet (registry.awaitAnswer). */
  timer?: ReturnType<typeof setTimeout>;
}

export type SessionLog = (name: string, message: string) => void;

const KILL_GRACE_MS = 3000;
/** How long a worker being adopted has to answer, and how often one that did not is asked again. */
const ADOPT_HELLO_MS = Number(process.env.PYTHOND_ADOPT_TIMEOUT_MS) || 3000;
const ADOPT_RETRY_MS = Math.min(ADOPT_HELLO_MS, 2000);

export class Registry {
  private sessions = new Map<string, Session>();
  private readonly spares: SparePool;

  constructor(
    private readonly runtime: string,
    private readonly log: SessionLog,
  ) {
    this.spares = new SparePool(runtime);
  }

  list(): Session[] {
    return [...this.sessions.values()];
  }

  has(name: string): boolean {
    return this.sessions.has(name);
  }

  /** The live session, or a clear error (missing, starting, dead and why). */
  get(name: string): Session & { link: WorkerLink } {
    const s = this.sessions.get(name);
    if (!s) throw new PythondError("no_session", `no session '${name}' -- create it first with: pysh new ${name}`);
    if (s.state === "incompatible") {
      throw new PythondError("worker_incompatible", `session '${name}' ${s.reason} -- end it with: kill ${name}`);
    }
    if (s.state === "starting" && s.reason) {
      throw new PythondError("busy", `session '${name}' does not answer (${s.reason}) -- the daemon takes it back once it does; or: kill ${name}`);
    }
    if (s.state === "dead" || !s.link) {
      const why = s.state === "dead" ? `is dead (${s.reason ?? "reason unknown"})` : "is still starting";
      throw new PythondError("session_dead", `session '${name}' ${why} -- start it again with: new ${name} --replace`);
    }
    return s as Session & { link: WorkerLink };
  }

  async create(name: string, opts: { replace?: boolean; python?: string; cwd?: string; idleTimeout?: number }): Promise<Session> {
    const old = this.sessions.get(name);
    if (old && old.state !== "dead") {
      if (!opts.replace) throw new PythondError("session_exists", `session '${name}' already exists (pysh new ${name} --replace replaces it)`);
      await this.kill(name);
    }
    const placeholder: Session = { name, state: "starting", pid: 0 };
    this.sessions.set(name, placeholder);
    try {
      // A warm spare (spare.ts) serves a `new` with the default interpreter; then another starts.
      const claimed = opts.python === undefined ? await this.spares.claim(name, opts) : null;
      const spawned = claimed?.spawned ?? (await spawnWorker({ name, runtime: this.runtime, ...opts }));
      const record = readRecord(spawned.recordPath);
      if (record.history_problem) this.log(name, record.history_problem); // once, at `new`
      const link = claimed?.link ?? (await WorkerLink.connect(record.sock, record.secret));
      this.spares.refill();
      const s: Session = { name, state: "alive", pid: spawned.pid, link, record, exited: spawned.exited };
      this.sessions.set(name, s);
      this.watch(s);
      return s;
    } catch (e) {
      if (this.sessions.get(name) === placeholder) this.sessions.delete(name);
      throw e;
    }
  }

  /** A session whose worker is already linked (unit tests link a fake worker over a memory pair). */
  addLinked(name: string, link: WorkerLink, pid: number): Session {
    const s: Session = { name, state: "alive", pid, link };
    this.sessions.set(name, s);
    this.watch(s);
    return s;
  }

  /** Adopts every live worker recorded in the runtime directory (daemon restart, upgrade). */
  async adoptAll(): Promise<void> {
    let files: string[] = [];
    try {
      files = readdirSync(join(this.runtime, "sessions")).filter((f) => f.endsWith(".json"));
    } catch {
      return;
    }
    await Promise.all(files.map((f) => this.adopt(join(this.runtime, "sessions", f))));
  }

  private async adopt(path: string): Promise<void> {
    let record: WorkerRecord;
    try {
      record = readRecord(path);
    } catch {
      return; // a record being written right now, or garbage: not ours to judge yet
    }
    if (!isAlive(record.pid)) {
      this.log(record.name, `lost: worker pid ${record.pid} is gone (it died while no daemon was running)`);
      this.sessions.set(record.name, { name: record.name, state: "dead", pid: record.pid, reason: "worker died while the daemon was down" });
      removeQuietly(path, record.sock);
      return;
    }
    try {
      const link = await WorkerLink.connect(record.sock, record.secret, ADOPT_HELLO_MS);
      this.adopted(record, link);
    } catch (e) {
      const err = PythondError.from(e);
      if (err.code === "timeout") return this.awaitAnswer(path, record, err.message);
      const state = err.code === "worker_incompatible" ? "incompatible" : "dead";
      this.sessions.set(record.name, { name: record.name, state, pid: record.pid, reason: err.message, record });
      this.log(record.name, `not adopted: ${err.message}`);
    }
  }

  private adopted(record: WorkerRecord, link: WorkerLink): void {
    const s: Session = { name: record.name, state: "alive", pid: record.pid, link, record };
    this.sessions.set(record.name, s);
    this.watch(s);
    this.log(record.name, `adopted worker pid ${record.pid}`);
  }

  /**
   * A live worker that did not answer (stopped with SIGSTOP, or wedged): the daemon starts without
   * it rather than waiting for ever, lists it as unresponsive, and adopts it once it answers
   * (`kill -CONT`), unless it dies, or is killed or replaced, first.
   */
  private awaitAnswer(path: string, record: WorkerRecord, why: string): void {
    const stopped = processState(record.pid) === "stopped";
    const reason = stopped ? `process stopped: kill -CONT ${record.pid}` : why;
    const s: Session = { name: record.name, state: "starting", pid: record.pid, record, reason };
    this.sessions.set(record.name, s);
    this.log(record.name, `not adopted yet: worker pid ${record.pid} ${stopped ? "is stopped (SIGSTOP)" : why}; adopting it once it answers`);
    const retry = async () => {
      if (this.sessions.get(record.name) !== s) return;
      if (!isAlive(record.pid)) {
        this.sessions.delete(record.name);
        return void this.adopt(path); // says it is lost, as at start
      }
      try {
        const link = await WorkerLink.connect(record.sock, record.secret, ADOPT_HELLO_MS);
        if (this.sessions.get(record.name) !== s) return link.close();
        this.adopted(record, link);
      } catch (e) {
        if (PythondError.from(e).code === "timeout") return void (s.timer = setTimeout(retry, ADOPT_RETRY_MS));
        if (this.sessions.get(record.name) !== s) return;
        this.sessions.delete(record.name);
        void this.adopt(path); // it answered, but not as a worker we can adopt: adopt says why
      }
    };
    s.timer = setTimeout(retry, ADOPT_RETRY_MS);
  }

  private watch(s: Session): void {
    s.link!.onClosed(async () => {
      if (this.sessions.get(s.name) !== s || s.state === "dead") return;
      const exit = s.exited ? await s.exited : isAlive(s.pid) ? "worker closed its socket" : "worker exited";
      const reason = s.link?.byeReason ?? exit;
      if (this.sessions.get(s.name) !== s) return;
      s.state = "dead";
      s.reason = reason;
      s.link = undefined;
      this.log(s.name, `died: ${reason}`);
      if (s.record) removeQuietly(join(this.runtime, "sessions", `${s.name}.json`), s.record.sock);
    });
  }

  /** SIGTERM to the worker's process group, SIGKILL after 3 s; the record goes too. */
  async kill(name: string): Promise<void> {
    const s = this.sessions.get(name);
    if (!s) throw new PythondError("no_session", `no session '${name}' -- create it first with: pysh new ${name}`);
    this.sessions.delete(name);
    clearTimeout(s.timer);
    if (s.state !== "dead" && s.pid) {
      const pgid = s.record?.pgid ?? s.pid;
      signalGroup(pgid, "SIGTERM");
      const gone = await waitGone(s, KILL_GRACE_MS);
      if (!gone) signalGroup(pgid, "SIGKILL");
      signalGroup(pgid, "SIGKILL"); // stragglers in the group (a child that ignored SIGTERM)
    }
    s.link?.close();
    const paths = workerPaths(this.runtime, name);
    removeQuietly(paths.record, s.record?.sock ?? paths.sock);
  }

  async killAll(): Promise<void> {
    this.spares.close();
    await Promise.all(this.list().map((s) => this.kill(s.name).catch(() => {})));
  }

  /** Closes links only: workers live on for the next daemon. */
  detachAll(): void {
    this.spares.close();
    for (const s of this.sessions.values()) {
      clearTimeout(s.timer);
      const link = s.link;
      s.link = undefined;
      s.state = "dead";
      link?.close();
    }
  }
}

function readRecord(path: string): WorkerRecord {
  return JSON.parse(readFileSync(path, "utf8")) as WorkerRecord;
}

function removeQuietly(...paths: string[]): void {
  for (const p of paths) {
    try {
      unlinkSync(p);
    } catch {}
  }
}

function signalGroup(pgid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pgid, sig);
  } catch {}
}

async function waitGone(s: Session, ms: number): Promise<boolean> {
  if (s.exited) {
    let t: ReturnType<typeof setTimeout> | undefined;
    const r = await Promise.race([s.exited.then(() => true), new Promise<boolean>((res) => (t = setTimeout(() => res(false), ms)))]);
    clearTimeout(t);
    return r;
  }
  // Not our child (adopted): no exit notification exists, so look every 20 ms.
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (!isAlive(s.pid)) return true;
    await Bun.sleep(20);
  }
  return !isAlive(s.pid);
}
