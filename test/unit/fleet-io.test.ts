/**
 * The node services over the real multiplexer (src/link/mux.ts on an in-memory channel pair):
 * tunnels with end-to-end credits, the node's NodeIo, the client functions. Real processes, PTYs,
 * files and sockets behind them; only the hub-node socket is in memory here (the e2e tests run
 * real hub and node processes).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { memoryPair, type MemoryChannel } from "../../src/link/channel.ts";
import { Mux } from "../../src/link/mux.ts";
import { CommandLost, jobRequest, runSh, startDetached } from "../../src/fleet/io/client.ts";
import { IO_OP, openPipe, servePipe } from "../../src/fleet/io/mux-pipe.ts";
import { NodeIo } from "../../src/fleet/io/serve.ts";
import { windowOf } from "../../src/fleet/io/node-hook.ts";
import { TunnelDuplex } from "../../src/fleet/io/tunnel.ts";
import { receiveTree } from "../../src/fleet/files/receive.ts";
import { sendTree } from "../../src/fleet/files/send.ts";
import { listenForward } from "../../src/fleet/forward/forward.ts";
import { parseForwardSpec } from "../../src/fleet/forward/spec.ts";
import type { IoSpec } from "../../src/protocol/fleet-io.ts";
import { waitGone } from "../fixtures/proc.ts";

const home = mkdtempSync(join(tmpdir(), "pysh-io-"));
const nodeIo = new NodeIo({ home });
afterAll(() => {
  nodeIo.jobs.killAll();
  nodeIo.shells.hangupAll();
  rmSync(home, { recursive: true, force: true });
});

/** A hub-node link: the node serves `io` streams with the shared NodeIo (so jobs outlive links). */
function link() {
  const [hubSide, nodeSide] = memoryPair();
  const hub = new Mux(hubSide);
  const node: Mux = new Mux(nodeSide, {
    onFrame: (h) => {
      if (h.op === IO_OP) void nodeIo.serve(h.spec as IoSpec, new TunnelDuplex(servePipe(node, Number(h.rid)), windowOf(h.spec as IoSpec)));
    },
  });
  return {
    open: (spec: IoSpec, window?: number) => new TunnelDuplex(openPipe(hub, spec), window),
    cut: () => hubSide.close("cut"),
    hubSide: hubSide as MemoryChannel,
  };
}

const collect = () => {
  const out: Uint8Array[] = [];
  const err: Uint8Array[] = [];
  return {
    out,
    err,
    sinks: { stdout: (b: Uint8Array) => void out.push(b.slice()), stderr: (b: Uint8Array) => void err.push(b.slice()) },
    text: () => [Buffer.concat(out).toString(), Buffer.concat(err).toString()],
  };
};

describe("node io: sh and job", () => {
  test("sh: stdout/stderr apart, bytes exact, exit code; 127 for a missing command", async () => {
    const l = link();
    const c = collect();
    const r = await runSh(l.open({ kind: "sh", command: "printf 'a\\377b'; echo e >&2; exit 5" }), c.sinks);
    expect([...Buffer.concat(c.out)]).toEqual([0x61, 0xff, 0x62]);
    expect(c.text()[1]).toBe("e\n");
    expect(r.result.exit).toBe(5);
    const c2 = collect();
    expect((await runSh(l.open({ kind: "sh", command: "nope-not-here" }), c2.sinks)).result.exit).toBe(127);
    expect(c2.text()[1]).toContain("not found");
  });

  test("sh: stdin forwarded (5 MB through the tunnel to wc -c), EOF after it", async () => {
    const l = link();
    const c = collect();
    async function* input() {
      for (let i = 0; i < 5; i++) yield new Uint8Array(1_000_000).fill(65 + i);
    }
    const r = await runSh(l.open({ kind: "sh", command: "wc -c", stdin: true }), { ...c.sinks, stdin: input() });
    expect(c.text()[0]?.trim()).toBe("5000000");
    expect(r.result.exit).toBe(0);
  });

  test("sh: 200 MB to a slow client, all bytes, memory bounded", async () => {
    const l = link();
    let total = 0;
    let n = 0;
    const rss0 = process.memoryUsage().rss;
    let peak = 0;
    const r = await runSh(l.open({ kind: "sh", command: "head -c 200000000 /dev/zero" }), {
      stdout: async (b) => {
        total += b.length;
        if (++n % 64 === 0) {
          peak = Math.max(peak, process.memoryUsage().rss - rss0);
          await Bun.sleep(0); // a consumer that yields: the tunnel must wait for it
        }
      },
      stderr: () => {},
    });
    expect(total).toBe(200_000_000);
    expect(r.result.exit).toBe(0);
    console.log(`200 MB through a tunnel: peak RSS growth ${(peak / 1048576).toFixed(1)} MiB`);
    expect(peak).toBeLessThan(200 << 20);
  }, 60_000);

  test("detach, job info, job wait; a resent id never runs twice", async () => {
    const l = link();
    const { id } = await startDetached(l.open({ kind: "sh", command: "echo one; echo two >&2; exit 4", detach: true, id: "d-1" }));
    expect(id).toBe("d-1");
    const c = collect();
    const w = await jobRequest(l.open({ kind: "job", action: "wait", id }), c.sinks);
    expect(w.t).toBe("exit");
    expect(w.t === "exit" && w.result.exit).toBe(4);
    expect(c.text()).toEqual(["one\n", "two\n"]);
    const again = collect();
    const r = await runSh(l.open({ kind: "sh", command: "echo one; echo two >&2; exit 4", id: "d-1" }), again.sinks);
    expect(r.result.exit).toBe(4);
    expect(again.text()).toEqual(["one\n", "two\n"]); // the same job's kept output, not a second run
    const info = await jobRequest(l.open({ kind: "job", action: "info", id }), collect().sinks);
    expect(info.t === "info" && info.job).toMatchObject({ id: "d-1", state: "exited", result: { exit: 4 } });
    const list = await jobRequest(l.open({ kind: "job", action: "list" }), collect().sinks);
    expect(list.t === "jobs" && list.jobs.map((j) => j.id)).toContain("d-1");
    await expect(jobRequest(l.open({ kind: "job", action: "info", id: "nope" }), collect().sinks)).rejects.toThrow("no job 'nope'");
  });

  test("job kill ends the whole group (a forked grandchild too)", async () => {
    const l = link();
    const { id } = await startDetached(l.open({ kind: "sh", command: "sleep 60 & echo $!; wait", detach: true }));
    // the grandchild's pid: its first output line (waited for on the job itself: polling `info`
    // over the in-memory link would never yield to the pipe's I/O)
    const reader = nodeIo.jobs.get(id).output();
    const first = await reader.next();
    reader.close();
    const pid = Number(Buffer.from(first.value!.data).toString().trim());
    expect(pid).toBeGreaterThan(0);
    const c = collect();
    await jobRequest(l.open({ kind: "job", action: "info", id }), c.sinks);
    expect(c.text()[0]).toBe(`${pid}\n`);
    const k = await jobRequest(l.open({ kind: "job", action: "kill", id }), collect().sinks);
    expect(k.t === "exit" && k.result.killed).toBe(true);
    expect(await waitGone(pid)).toBe(true);
  });

  test("a link cut mid-command: the command runs on, its output is there from the offset seen", async () => {
    const l = link();
    const c = collect();
    let started = "";
    const running = runSh(l.open({ kind: "sh", command: "echo first; read x < /tmp/pysh-never-$$ 2>/dev/null || sleep 0.3; echo second", id: "cut-1" }), {
      ...c.sinks,
      stdout: (b) => {
        c.out.push(b.slice());
        if (Buffer.concat(c.out).toString().includes("first")) l.cut();
      },
      started: (id) => (started = id),
    });
    const e = (await running.catch((x) => x)) as CommandLost;
    expect(e).toBeInstanceOf(CommandLost);
    expect(e.id).toBe("cut-1");
    expect(started).toBe("cut-1");
    expect(e.offsets.out).toBe("first\n".length);
    const l2 = link(); // the link comes back
    const rest = collect();
    const w = await jobRequest(l2.open({ kind: "job", action: "wait", id: "cut-1", from: e.offsets }), rest.sinks, e.offsets);
    expect(rest.text()[0]).toBe("second\n");
    expect(w.t === "exit" && w.result.exit).toBe(0);
  });
});

describe("node io: files, shells, forwarding", () => {
  test("put and get through the tunnel (relative to the node's home), resume after a cut", async () => {
    const local = mkdtempSync(join(tmpdir(), "pysh-local-"));
    const src = join(local, "blob");
    writeFileSync(src, crypto.getRandomValues(new Uint8Array(60_000)).join(",").repeat(60));
    mkdirSync(join(home, "in"), { recursive: true });
    const l = link();
    const sent = await sendTree(l.open({ kind: "put", dest: "in" }), src);
    expect(sent.target).toBe(join(home, "in", "blob"));
    expect(readFileSync(join(home, "in", "blob")).equals(readFileSync(src))).toBe(true);
    // a cut mid-get: the local part file stays, the next get resumes from it
    const l2 = link();
    let seen = 0;
    const back = join(local, "back");
    await receiveTree(l2.open({ kind: "get", src: "~/in/blob", window: 256 << 10 }), back, {
      onProgress: (_p, done) => {
        seen = done;
        if (done > 2_000_000) l2.cut();
      },
    }).catch((e) => expect(e.message).toMatch(/cut off|connection lost/));
    expect(seen).toBeGreaterThan(2_000_000);
    const got = await receiveTree(link().open({ kind: "get", src: "in/blob" }), back);
    expect(got.resumed).toBeGreaterThan(0);
    expect(readFileSync(back).equals(readFileSync(src))).toBe(true);
    await expect(receiveTree(link().open({ kind: "get", src: "in/none" }), join(local, "x"))).rejects.toThrow(
      `no such file or directory: ${join(home, "in/none")}`,
    );
    rmSync(local, { recursive: true, force: true });
  });

  test("shell: open, type, detach; attach again with the screen replayed; read-only viewer", async () => {
    const l = link();
    const io = l.open({ kind: "shell", action: "open", cols: 100, rows: 30 });
    const first = JSON.parse((await io.recv()) as string);
    expect(first.t).toBe("attached");
    await io.send(new TextEncoder().encode("echo hi-$((40+2))\n"));
    let screen = "";
    while (!screen.includes("hi-42")) {
      const m = await io.recv();
      if (m instanceof Uint8Array) screen += Buffer.from(m).toString();
    }
    io.close(); // detach: the shell lives on
    const ro = l.open({ kind: "shell", action: "attach", id: first.id, readOnly: true });
    expect(JSON.parse((await ro.recv()) as string).t).toBe("attached");
    const replay = Buffer.from((await ro.recv()) as Uint8Array).toString();
    expect(replay).toContain("hi-42");
    await ro.send(new TextEncoder().encode("x"));
    expect(JSON.parse((await ro.recv()) as string)).toEqual({ t: "warn", message: "this viewer is read-only" });
    const list = l.open({ kind: "shell", action: "list" });
    const shells = JSON.parse((await list.recv()) as string).shells;
    expect(shells.find((s: { id: string }) => s.id === first.id).viewers).toBe(1);
    const rw = l.open({ kind: "shell", action: "attach", id: first.id });
    await rw.recv();
    await rw.send(new TextEncoder().encode("exit 6\n"));
    let exit;
    while (!exit) {
      const m = await ro.recv();
      if (typeof m === "string" && JSON.parse(m).t === "exit") exit = JSON.parse(m);
      if (m === null) break;
    }
    expect(exit).toMatchObject({ exit: 6 });
  });

  test("forward: a local listener, connections carried to HOST:PORT as the node sees it", async () => {
    const server = createServer((s) => s.pipe(s));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as { port: number }).port;
    const l = link();
    const fwd = await listenForward(parseForwardSpec(`0:127.0.0.1:${port}`), async () => l.open({ kind: "forward", host: "127.0.0.1", port }));
    const echoes = await Promise.all(
      [1, 2, 3, 4, 5].map(
        (i) =>
          new Promise<string>((resolve) => {
            const s = connect({ port: fwd.address.port, host: "127.0.0.1" }, () => s.end(`hello ${i}`));
            let got = "";
            s.on("data", (d) => (got += d));
            s.on("close", () => resolve(got));
          }),
      ),
    );
    expect(echoes).toEqual([1, 2, 3, 4, 5].map((i) => `hello ${i}`));
    await fwd.close();
    server.close();
  });

  test("an unknown service is a clear error", async () => {
    const io = link().open({ kind: "bogus" } as unknown as IoSpec);
    expect(JSON.parse((await io.recv()) as string)).toEqual({ t: "err", code: "unknown_command", message: "unknown node service 'bogus'" });
  });
});

test("tunnel credits: a sender never runs more than the window ahead of a reader that stopped", async () => {
  const l = link();
  const io = l.open({ kind: "sh", command: "head -c 50000000 /dev/zero", window: 256 << 10 });
  await io.recv(); // started
  // read nothing more: the node can send at most one window, then waits; its job's pipe waits too
  const job = nodeIo.jobs.list().at(-1)!;
  const j = nodeIo.jobs.get(job.id);
  while (j.out.end < 1 << 20) await j.changed();
  const stalled = j.out.end;
  // the job's reader is held back by the tunnel: the pipe stops at reader lag + one window
  expect(stalled).toBeLessThanOrEqual((256 << 10) + (2 << 20) + (1 << 20));
  io.close();
  await j.done; // the reader let go: the command finishes (its output kept, bounded)
  expect(statSync("/dev/null")).toBeDefined();
});
