/**
 * The daemon <-> worker connection (src/worker/link.ts, py/_pythond/server.py) spoken directly
 * to a real worker: runs on the run lane (read by the worker's main thread), runs on a plain
 * connection as a daemon without lanes sends them (so an older daemon still works with this
 * worker), what the run lane refuses, and a worker that sleeps when it has nothing to do.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { encodeWorkerFrame, WorkerFrameReader, type WorkerHeader } from "../../src/link/frame.ts";
import { startDaemon, until, type Daemon } from "./harness.ts";

let d: Daemon;
let record: { sock: string; secret: string; pid: number };
beforeAll(async () => {
  d = await startDaemon();
  expect((await d.pysh(["new", "lanes"])).code).toBe(0);
  await d.pysh(["run", "lanes", "x = 41"]);
  record = JSON.parse(readFileSync(join(d.e.dir, "run", "pythond", "sessions", "lanes.json"), "utf8"));
});
afterAll(async () => {
  await d?.[Symbol.asyncDispose]();
});

type Frame = { header: WorkerHeader; body: Uint8Array };

/** A raw connection to the worker's socket, saying hello (on `lane`, if given). */
async function workerConn(lane?: "run") {
  const reader = new WorkerFrameReader();
  const inbox: Frame[] = [];
  const waiters: Array<(f: Frame) => void> = [];
  const socket = await Bun.connect({
    unix: record.sock,
    socket: {
      data(_s, data) {
        for (const f of reader.push(data)) {
          const frame = { header: f.header, body: f.body.slice() };
          const w = waiters.shift();
          if (w) w(frame);
          else inbox.push(frame);
        }
      },
    },
  });
  const next = () => new Promise<Frame>((resolve) => (inbox.length ? resolve(inbox.shift()!) : waiters.push(resolve)));
  socket.write(encodeWorkerFrame({ op: "hello", secret: record.secret, v: 1, ...(lane ? { lane } : {}) }));
  const hello = (await next()).header;
  return { hello, next, send: (h: WorkerHeader, body?: string) => socket.write(encodeWorkerFrame(h, body)), close: () => socket.end() };
}

/** Sends a run and collects its frames up to `end`. */
async function run(c: Awaited<ReturnType<typeof workerConn>>, rid: number, code: string) {
  c.send({ op: "run", rid }, code);
  const ops: string[] = [];
  let out = "";
  for (;;) {
    const { header, body } = await c.next();
    expect(header.rid).toBe(rid);
    ops.push(header.op);
    if (header.op === "out") out += new TextDecoder().decode(body);
    if (header.op === "end") return { ops, out, end: header };
  }
}

describe("worker lanes", () => {
  test("the worker offers a run lane; a cell on it: start, output, end", async () => {
    const c = await workerConn("run");
    expect(c.hello).toMatchObject({ op: "hello", ok: true, lanes: ["run"] });
    const r = await run(c, 1, "x + 1");
    expect(r.ops).toEqual(["start", "out", "end"]);
    expect(r.out).toBe("42\n");
    expect(r.end).toMatchObject({ ok: true, error: "" });
    const bad = await run(c, 2, "1/0");
    expect(bad.end.ok).toBe(false);
    expect(String(bad.end.error)).toContain("ZeroDivisionError");
    c.close();
  });

  test("a run on a connection without a lane (a daemon that opens none) works the same", async () => {
    const c = await workerConn();
    const r = await run(c, 7, "x * 2");
    expect(r.ops).toEqual(["start", "out", "end"]);
    expect(r.out).toBe("82\n");
    c.close();
  });

  test("the run lane refuses anything but run, and stays usable", async () => {
    const c = await workerConn("run");
    c.send({ op: "status", rid: 3 });
    const { header } = await c.next();
    expect(header).toMatchObject({ op: "reply", rid: 3, ok: false });
    expect(String(header.error)).toContain("only run goes on the run lane");
    expect((await run(c, 4, "x")).out).toBe("41\n");
    c.close();
  });

  test("a wrong secret on the run lane is refused", async () => {
    const reader = new WorkerFrameReader();
    let reply: WorkerHeader | undefined;
    const s = await Bun.connect({ unix: record.sock, socket: { data: (_s, b) => void (reply ??= reader.push(b)[0]?.header) } });
    s.write(encodeWorkerFrame({ op: "hello", secret: "not-it", v: 1, lane: "run" }));
    await until(() => reply !== undefined, "the worker's answer");
    expect(reply).toMatchObject({ op: "hello", ok: false });
    s.end();
  });
});

describe("a cell that calls os.fork() itself", () => {
  test("the child returning from the cell ends quietly: one answer, and later runs are not stolen", async () => {
    const r = await d.pysh(["run", "lanes", "import os\npid = os.fork()\nif pid == 0:\n    print('child')\nos.waitpid(pid, 0)[1] if pid else None"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("0\n"); // the parent's value; the child's print went nowhere
    // A child left reading the daemon's sockets would answer some of these with its own pid.
    for (let i = 0; i < 20; i++) expect((await d.pysh(["run", "lanes", "os.getpid()"])).stdout).toBe(`${record.pid}\n`);
  });
});

describe("an idle worker", () => {
  /** Voluntary context switches of all the worker's threads: each is a wake-up. */
  function wakeUps(pid: number): number {
    let n = 0;
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      const m = /voluntary_ctxt_switches:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/task/${t}/status`, "utf8"));
      n += Number(m?.[1] ?? 0);
    }
    return n;
  }

  test("does not wake up while nothing happens (after a short burst of ticking)", async () => {
    await d.pysh(["run", "lanes", "print('last output for a while')"]);
    // The capture thread ticks every 50 ms for 2 s after activity, then sleeps on its pipe: wait
    // until a second goes by with (almost) no wake-ups at all. A ticking thread makes 20.
    let quiet = false;
    await until(
      async () => {
        const before = wakeUps(record.pid);
        await Bun.sleep(1000); // the window being measured, not a wait for something to happen
        quiet = wakeUps(record.pid) - before <= 2;
        return quiet;
      },
      "a quiet second",
      10_000,
    );
    expect(quiet).toBe(true);
    // ...and it still answers at once, output streams as before.
    expect((await d.pysh(["run", "lanes", "x + 1"])).stdout).toBe("42\n");
  }, 20_000);
});
