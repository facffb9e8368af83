/**
 * `status` of a session whose worker does not answer (stopped with SIGSTOP, wedged in C code
 * holding the GIL): the daemon answers within STATUS_BOUND_MS with `"state": "unresponsive"` and
 * what it knows without the worker (pid, the process state from /proc, the record), instead of
 * waiting with no bound. `ls` shows such a session as unresponsive too: a stopped process at once,
 * a wedged one after a `status` went unanswered and nothing was heard from it since.
 */
import { readFileSync } from "node:fs";
import type { WorkerHeader } from "../protocol/worker.ts";
import type { Session } from "./registry.ts";

export const STATUS_BOUND_MS = 2000;

/** The kernel's view of a process: "stopped" (SIGSTOP, a debugger), "zombie", "running"; null off Linux. */
export function processState(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const c = stat.charAt(stat.lastIndexOf(")") + 2);
    return c === "T" || c === "t" ? "stopped" : c === "Z" ? "zombie" : c === "D" ? "uninterruptible" : "running";
  } catch {
    return null;
  }
}

/** Why an alive session looks unresponsive right now, or undefined if nothing says so. */
export function unresponsiveWhy(s: Session): string | undefined {
  if (processState(s.pid) === "stopped") return "process stopped (SIGSTOP?)";
  if (s.unresponsiveSince !== undefined && s.link && s.link.lastHeard < s.unresponsiveSince) {
    return `no answer to status for ${((Date.now() - s.unresponsiveSince) / 1000).toFixed(0)} s`;
  }
  return undefined;
}

/** The worker's status reply, or after STATUS_BOUND_MS an unresponsive one made by the daemon. */
export async function boundedStatus(s: Session & { link: NonNullable<Session["link"]> }): Promise<WorkerHeader> {
  const asked = Date.now();
  const reply = s.link.request("status");
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((resolve) => (timer = setTimeout(() => resolve("late"), STATUS_BOUND_MS)));
  const h = await Promise.race([reply, late]).finally(() => clearTimeout(timer));
  if (h !== "late") {
    s.unresponsiveSince = undefined;
    return h;
  }
  reply.catch(() => {}); // answered (or failed) later: nobody waits for it any more
  s.unresponsiveSince ??= asked;
  const rec = (s.record ?? {}) as unknown as Record<string, unknown>;
  return {
    op: "reply",
    ok: true,
    data: {
      state: "unresponsive",
      reason: `the worker did not answer within ${STATUS_BOUND_MS / 1000} s`,
      process: processState(s.pid) ?? "unknown",
      pid: s.pid,
      python: rec.python_version ?? null,
      cwd: rec.cwd ?? null,
      created: rec.created ?? null,
      queued: s.link.queuedRuns,
    },
  };
}
