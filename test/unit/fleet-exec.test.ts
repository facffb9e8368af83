/** The node's command engine (src/fleet/exec): real shells, real process groups, real pipes. */
import { afterAll, describe, expect, test } from "bun:test";
import { Job, type OutputEvent } from "../../src/fleet/exec/job.ts";
import { JobTable } from "../../src/fleet/exec/table.ts";
import { PythondError } from "../../src/protocol/errors.ts";
import { gone, waitGone } from "../fixtures/proc.ts";

const table = new JobTable();
afterAll(() => table.killAll());

async function collect(job: Job, from?: { out?: number; err?: number }) {
  const out: Uint8Array[] = [];
  const err: Uint8Array[] = [];
  const events: OutputEvent[] = [];
  for await (const e of job.output(from)) {
    events.push(e);
    (e.fd === 1 ? out : err).push(e.data);
  }
  // the terminal state is there as soon as the output ended, never before
  expect(job.result).toBeDefined();
  return { out: Buffer.concat(out), err: Buffer.concat(err), events, result: job.result! };
}

function run(command: string, more: Partial<ConstructorParameters<typeof Job>[1]> = {}): Job {
  return table.start({ command, ...more }).job;
}


describe("exec: one command", () => {
  test("stdout and stderr apart, bytes exact (binary, invalid UTF-8), exit code", async () => {
    const job = run("printf 'a\\377\\000b'; printf 'e\\376' >&2; printf 'c'; exit 3");
    const r = await collect(job);
    expect([...r.out]).toEqual([0x61, 0xff, 0x00, 0x62, 0x63]);
    expect([...r.err]).toEqual([0x65, 0xfe]);
    expect(r.result.exit).toBe(3);
    expect(r.result.code).toBe(3);
    expect(r.result.signal).toBeNull();
  });

  test("a command that does not exist: 127 and the shell's message", async () => {
    const r = await collect(run("no-such-command-xyz"));
    expect(r.result.exit).toBe(127);
    expect(r.err.toString()).toContain("no-such-command-xyz");
    expect(r.err.toString()).toMatch(/not found/);
  });

  test("killed by a signal: 128+n", async () => {
    const r = await collect(run("kill -KILL $$"));
    expect(r.result.signal).toBe("SIGKILL");
    expect(r.result.exit).toBe(137);
  });

  test("the words run by $SHELL -c, else /bin/sh", async () => {
    const saved = process.env.SHELL;
    try {
      process.env.SHELL = "/bin/bash";
      expect((await collect(run("echo $0"))).out.toString()).toBe("/bin/bash\n");
      process.env.SHELL = "/nonexistent/shell";
      expect((await collect(run("echo $0"))).out.toString()).toBe("/bin/sh\n");
    } finally {
      if (saved === undefined) delete process.env.SHELL;
      else process.env.SHELL = saved;
    }
  });

  test("cwd and env; a missing cwd is a clear error", async () => {
    const r = await collect(run("pwd; echo $FOO", { cwd: "/tmp", env: { FOO: "bar baz" } }));
    expect(r.out.toString()).toBe("/tmp\nbar baz\n");
    expect(() => run("true", { cwd: "/no/such/dir" })).toThrow(new PythondError("not_found", "no such directory: /no/such/dir"));
    expect(() => run("true", { cwd: "/etc/hostname" })).toThrow("not a directory: /etc/hostname");
  });

  test("stdin forwarded with backpressure (10 MiB through wc -c), EOF on close", async () => {
    const job = run("wc -c", { stdin: true });
    const chunk = new Uint8Array(1 << 20).fill(7);
    for (let i = 0; i < 10; i++) await job.writeStdin(chunk);
    job.closeStdin();
    const r = await collect(job);
    expect(r.out.toString().trim()).toBe(String(10 << 20));
  });

  test("without stdin the command reads /dev/null (never hangs on input)", async () => {
    const r = await collect(run("cat; echo end"));
    expect(r.out.toString()).toBe("end\n");
  });

  test("stdin to a command that stopped reading is dropped, not an error", async () => {
    const job = run("exec 0<&-; echo closed", { stdin: true });
    for (let i = 0; i < 4; i++) await job.writeStdin(new Uint8Array(1 << 20));
    job.closeStdin();
    expect((await collect(job)).out.toString()).toBe("closed\n");
  });
});

describe("exec: timeout and kill", () => {
  test("timeout: SIGTERM to the group, exit 124", async () => {
    const r = await collect(run("sleep 30", { timeoutMs: 100 }));
    expect(r.result.exit).toBe(124);
    expect(r.result.timedOut).toBe(true);
    expect(r.result.signal).toBe("SIGTERM");
  });

  test("a command ignoring SIGTERM is killed at the timeout + 3 s", async () => {
    const job = run("trap '' TERM; echo ready; sleep 30; echo survived", { timeoutMs: 200 });
    const r = await collect(job);
    expect(r.out.toString()).toBe("ready\n");
    expect(r.result.exit).toBe(124);
    expect(r.result.signal).toBe("SIGKILL");
    expect(r.result.durationMs).toBeGreaterThanOrEqual(3200);
  });

  test("a forked grandchild holding the output is killed with the group on kill", async () => {
    const job = run("sleep 60 & echo $!; exit 0");
    const first = await job.output().next();
    const grandchild = Number(Buffer.from(first.value!.data).toString().trim());
    expect(grandchild).toBeGreaterThan(0);
    expect(gone(grandchild)).toBe(false);
    while (!job.leaderExited) await job.changed();
    // the shell exited, but the grandchild holds stdout: the job is not over (ssh waits too)
    expect(job.result).toBeUndefined();
    expect(job.info()).toMatchObject({ state: "running", leaderExited: true });
    job.kill();
    const r = await job.done;
    expect(r.killed).toBe(true);
    expect(r.exit).toBe(0); // the shell's own status: it exited before the kill
    expect(await waitGone(grandchild)).toBe(true);
  });

  test("...and on timeout", async () => {
    const job = run("sh -c 'sleep 60 & echo $!; wait'", { timeoutMs: 300 });
    const first = await job.output().next();
    const grandchild = Number(Buffer.from(first.value!.data).toString().trim());
    const r = await job.done;
    expect(r.exit).toBe(124);
    expect(await waitGone(grandchild)).toBe(true);
  });
});

describe("exec: output kept and streamed", () => {
  test("a reader resumes from the offset it last saw; evicted bytes are counted as skipped", async () => {
    const job = run("i=0; while [ $i -lt 200 ]; do echo line$i; i=$((i+1)); done; echo err >&2", { keep: 256 });
    await job.done;
    const all = job.out.end;
    expect(job.out.start).toBeGreaterThan(0); // only the tail is kept
    const r = await collect(job, { out: 0 });
    expect(r.events[0]!.skipped).toBe(job.out.start);
    expect(r.out.length).toBe(all - job.out.start);
    expect(r.out.toString().endsWith("line199\n")).toBe(true);
    const tail = await collect(job, { out: all - 8, err: 4 });
    expect(tail.out.toString()).toBe("line199\n");
    expect(tail.err.length).toBe(0);
  });

  test("200 MB of output: every byte arrives, the pipe waits for a slow reader, memory bounded", async () => {
    const job = run("head -c 200000000 /dev/zero; echo done >&2");
    const reader = job.output();
    let total = 0;
    let maxLag = 0;
    let peak = 0;
    const base = process.memoryUsage().rss;
    let n = 0;
    for await (const e of reader) {
      if (e.fd === 1) total += e.data.length;
      maxLag = Math.max(maxLag, job.out.end - reader.pos[0]);
      if (++n % 200 === 0) {
        Bun.gc(false);
        peak = Math.max(peak, process.memoryUsage().rss - base);
        await Bun.sleep(0); // a slow consumer: yield to let the pump run ahead if it could
      }
    }
    expect(total).toBe(200_000_000);
    expect(job.result!.exit).toBe(0);
    expect(job.err.read(0).data.toString()).toBe("done\n");
    expect(maxLag).toBeLessThanOrEqual((1 << 20) + (1 << 20)); // window + one pipe read
    expect(job.out.end - job.out.start).toBeLessThanOrEqual((8 << 20) + (1 << 20));
    expect(peak).toBeLessThan(120 << 20);
  }, 60_000);

  test("with no reader the command runs on and only the tail is kept", async () => {
    const job = run("head -c 20000000 /dev/urandom | od -An -tx1 | head -c 30000000");
    const r = await job.done;
    expect(r.exit).toBe(0);
    expect(job.out.end).toBe(30_000_000);
    expect(job.out.end - job.out.start).toBe(8 << 20);
  }, 60_000);

  test("many jobs at once; a long one never blocks another", async () => {
    const long = run("sleep 30");
    const quick = Array.from({ length: 20 }, (_, i) => run(`echo ${i}`));
    const outs = await Promise.all(quick.map((j) => collect(j)));
    expect(outs.map((o) => o.out.toString())).toEqual(quick.map((_, i) => `${i}\n`));
    expect(long.result).toBeUndefined();
    long.kill();
    expect((await long.done).exit).toBe(143);
  });
});

describe("exec: the job table", () => {
  test("a sender-chosen id is deduplicated: a resend never runs twice", async () => {
    const t = new JobTable();
    const a = t.start({ command: "echo once" }, "req-1");
    const b = t.start({ command: "echo once" }, "req-1");
    expect(a.created).toBe(true);
    expect(b.created).toBe(false);
    expect(b.job).toBe(a.job);
    expect((await collect(a.job)).out.toString()).toBe("once\n");
    expect(t.list().map((j) => j.id)).toEqual(["req-1"]);
    expect(t.get("req-1").info().state).toBe("exited");
    expect(() => t.get("nope")).toThrow("no job 'nope' -- jobs: req-1");
    expect(() => t.start({ command: "true" }, "bad id/x")).toThrow("bad job id");
  });

  test("finished jobs past the limits go first, running ones stay", async () => {
    const t = new JobTable({ maxJobs: 3, minAgeMs: 0 });
    const running = t.start({ command: "sleep 30" }, "long").job;
    for (let i = 0; i < 6; i++) await t.start({ command: `echo ${i}` }, `j${i}`).job.done;
    const ids = t.list().map((j) => j.id);
    expect(ids).toContain("long");
    expect(ids).toContain("j5");
    expect(ids).not.toContain("j0");
    expect(ids.length).toBeLessThanOrEqual(3);
    running.kill();
    await running.done;
  });
});
