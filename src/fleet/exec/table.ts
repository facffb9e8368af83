/**
 * The jobs of one node: started by id, found by id, ended by id. The id is the sender's when it
 * gives one (the hub's request id), so a request resent after a link drop finds the job it already
 * started instead of running the command twice. Finished jobs stay for `pysh job` as cells stay
 * for `poll`: an hour, at least 5 minutes unless more than `maxJobs` jobs or `maxKept` bytes of
 * their output pile up; running jobs are never dropped.
 */
import { randomBytes } from "node:crypto";
import { PythondError } from "../../protocol/errors.ts";
import { Job, type JobInfo, type JobSpec } from "./job.ts";

export interface JobTableOptions {
  maxJobs?: number;
  maxKept?: number;
  minAgeMs?: number;
  maxAgeMs?: number;
  /** Defaults applied to every job's spec (keep, window, shell...). */
  defaults?: Partial<JobSpec>;
}

const ID_RE = /^[A-Za-z0-9._-]{1,64}$/;

export class JobTable {
  private readonly jobs = new Map<string, Job>();
  /** Finished jobs in the order they ended (eviction order). */
  private readonly finished = new Map<string, Job>();
  private readonly opts: Required<Omit<JobTableOptions, "defaults">> & { defaults: Partial<JobSpec> };

  constructor(opts: JobTableOptions = {}) {
    this.opts = {
      maxJobs: opts.maxJobs ?? 1000,
      maxKept: opts.maxKept ?? 128 << 20,
      minAgeMs: opts.minAgeMs ?? 300_000,
      maxAgeMs: opts.maxAgeMs ?? 3_600_000,
      defaults: opts.defaults ?? {},
    };
  }

  /**
   * Starts a command, or returns the job already started under `id` (a resend): `created` says
   * which. Throws for a bad id, a missing cwd, a shell that cannot start.
   */
  start(spec: JobSpec, id?: string): { job: Job; created: boolean } {
    if (id !== undefined) {
      if (!ID_RE.test(id)) throw new PythondError("usage", `bad job id '${id}' (letters, digits, . _ -; at most 64)`);
      const old = this.jobs.get(id);
      if (old) return { job: old, created: false };
    }
    const jid = id ?? randomBytes(6).toString("hex");
    const job = new Job(jid, { ...this.opts.defaults, ...spec });
    this.jobs.set(jid, job);
    void job.done.then(() => {
      this.finished.set(jid, job);
      this.evict();
    });
    return { job, created: true };
  }

  get(id: string): Job {
    const job = this.jobs.get(id);
    if (!job) {
      const ids = [...this.jobs.keys()].slice(-10);
      throw new PythondError("no_job", `no job '${id}'${ids.length ? ` -- jobs: ${ids.join(", ")}` : ""}`);
    }
    return job;
  }

  has(id: string): boolean {
    return this.jobs.has(id);
  }

  list(): JobInfo[] {
    return [...this.jobs.values()].map((j) => j.info());
  }

  /** Ends every running job (node shutdown is NOT a reason: jobs outlive links; tests use this). */
  killAll(): void {
    for (const j of this.jobs.values()) if (!j.result) j.kill();
  }

  private evict(now = Date.now()): void {
    let kept = 0;
    for (const j of this.finished.values()) kept += j.out.end - j.out.start + (j.err.end - j.err.start);
    for (const [id, j] of this.finished) {
      const age = now - (j.startedAt + (j.result?.durationMs ?? 0));
      const over = this.jobs.size > this.opts.maxJobs || kept > this.opts.maxKept;
      if (!(age > this.opts.maxAgeMs || (over && age > this.opts.minAgeMs) || this.jobs.size > this.opts.maxJobs * 2)) break;
      this.finished.delete(id);
      this.jobs.delete(id);
      kept -= j.out.end - j.out.start + (j.err.end - j.err.start);
    }
  }
}
