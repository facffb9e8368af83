/**
 * Reliability: churn. 200 sessions created and killed, and 2,000 connections opened and closed;
 * afterwards the daemon's open fds (/proc/PID/fd), threads (/proc/PID/task) and child processes
 * are back to where they started.
 *
 * "Where they started" is read after a short warm-up (a few sessions and connections): Bun starts
 * some threads lazily the first time it spawns a process or touches the file system from its
 * thread pool (and keeps them), so the very first count is lower for reasons that are not leaks.
 * After the warm-up the counts must come back exactly, apart from a slack of THREAD_SLACK threads
 * (Bun's pool may grow a worker under load and park it rather than end it). The last `new` of the
 * warm-up starts the next spare, which holds three sockets in the daemon once linked (its control
 * and run lanes and its stderr) and others while it starts: the start is read once it is linked.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { acceptedUnixConnections, childPids, fdCount, fdKinds, threadCount } from "../fixtures/proc.ts";
import { alive, sparesDir, startDaemon, until, type Daemon } from "./harness.ts";

const SESSIONS = 200;
const CONNECTIONS = 2000;
const PARALLEL = 4;
const THREAD_SLACK = 2;

let d: Daemon;
beforeAll(async () => {
  d = await startDaemon();
});
afterAll(async () => {
  await d?.[Symbol.asyncDispose]();
});

function openWs(): Promise<WebSocket> {
  const ws = new WebSocket(`ws+unix://${d.e.sock}`, ["pythond.1"]);
  return new Promise((resolve, reject) => {
    ws.onopen = () => resolve(ws);
    ws.onerror = () => reject(new Error("connect failed"));
  });
}

/** One connection: open, one command, close; resolves when the close completed. */
async function connectOnce(cmd: string): Promise<string> {
  const ws = await openWs();
  const reply = await new Promise<string>((resolve) => {
    ws.onmessage = (ev) => resolve(String(ev.data));
    ws.send(cmd);
  });
  await new Promise<void>((resolve) => {
    ws.onclose = () => resolve();
    ws.close();
  });
  return reply;
}

async function churnSessions(n: number, tag: string): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: PARALLEL }, async () => {
      while (next < n) {
        const name = `${tag}-${next++}`;
        const created = await d.pysh(["new", name]);
        expect(created.stdout, created.stderr).toMatch(new RegExp(`^OK ${name} pid=\\d+\\n$`));
        const pid = Number(/pid=(\d+)/.exec(created.stdout)![1]);
        expect((await d.pysh(["run", name, "6 * 7"])).stdout).toBe("42\n");
        expect((await d.pysh(["kill", name])).code).toBe(0);
        await until(() => !alive(pid), `worker ${pid} to be gone`);
      }
    }),
  );
}

async function churnConnections(n: number): Promise<void> {
  for (let done = 0; done < n; done += 50) {
    const replies = await Promise.all(Array.from({ length: Math.min(50, n - done) }, (_, i) => connectOnce(i % 2 ? "ls" : "hello")));
    for (const r of replies) expect(r.length).toBeGreaterThan(0);
  }
}

function counts() {
  return { fds: fdCount(d.pid), threads: threadCount(d.pid), children: childPids(d.pid).length };
}

test(`${SESSIONS} sessions and ${CONNECTIONS} connections later, the daemon holds what it held before`, async () => {
  await churnSessions(6, "warm");
  await churnConnections(100);
  await until(() => acceptedUnixConnections(`${sparesDir(d)}/`) === 2, "the next spare to be linked (control and run lanes)");
  const start = counts();
  const startKinds = fdKinds(d.pid);

  await churnSessions(SESSIONS, "churn");
  await churnConnections(CONNECTIONS);

  expect((await d.pysh(["ls"])).stdout).toBe("(no sessions)\n");
  const why = () => `start ${JSON.stringify(start)} ${JSON.stringify(startKinds)}; now ${JSON.stringify(counts())} ${JSON.stringify(fdKinds(d.pid))}`;
  const back = () => {
    const c = counts();
    return c.fds <= start.fds && c.children <= start.children && c.threads <= start.threads + THREAD_SLACK;
  };
  await until(back, "the daemon's fds, threads and children to come back").catch(() => {
    throw new Error(`not back where it started: ${why()}`);
  });
  // And it still works.
  expect((await d.pysh(["new", "after"])).code).toBe(0);
  expect((await d.pysh(["run", "after", "'fine'"])).stdout).toBe("fine\n");
});
