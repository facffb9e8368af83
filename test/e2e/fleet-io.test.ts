/**
 * Issue 19 end to end: a real hub and real `pythond join` nodes (private HOMEs, loopback TLS), and
 * pysh as a user runs it: sh (bytes, exit codes, stdin, timeout, detach/job/kill), fan-out, shells
 * in a real PTY, put/get, forwarding, and the faults (no such node, a link cut mid-command).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer, connect } from "node:net";
import { join } from "node:path";
import { accessLog, PYSH, until } from "./harness.ts";
import { gone, rss, waitGone } from "../fixtures/proc.ts";
import { tmpfs } from "../fixtures/fsfaults.ts";
import { blocksFile, Hub, joinNode, Node, Relay } from "./fleet-harness.ts";

let hub: Hub;
let n1: Node;
let n2: Node;

beforeAll(async () => {
  hub = await Hub.start();
  n1 = await joinNode(hub, "n1", ["--label", "role=web", "--label", "grp=a"]);
  n2 = await joinNode(hub, "n2", ["--label", "role=web", "--label", "tier=b", "--label", "grp=a"]);
});
afterAll(async () => {
  await n1?.[Symbol.asyncDispose]();
  await n2?.[Symbol.asyncDispose]();
  await hub?.[Symbol.asyncDispose]();
});

/** pysh with raw bytes out (the harness decodes text). */
async function pysh(args: string[], stdin?: Uint8Array | string, o: { cwd?: string; env?: Record<string, string>; argv?: string[] } = {}) {
  const p = Bun.spawn(o.argv ?? [PYSH, ...args], {
    env: { ...hub.d.e.env, ...o.env },
    cwd: o.cwd ?? hub.d.e.dir,
    stdin: stdin === undefined ? "ignore" : new Blob([stdin]),
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, err, code] = await Promise.all([new Response(p.stdout).bytes(), new Response(p.stderr).text(), p.exited]);
  return { code, out, stdout: Buffer.from(out).toString(), stderr: err };
}

/** Peak RSS growth of each process while something runs (sampled every 20 ms). */
function watchRss(pids: number[]) {
  const base = pids.map(rss);
  const peak = [...base];
  const t = setInterval(() => pids.forEach((p, i) => (peak[i] = Math.max(peak[i]!, rss(p)))), 20);
  return {
    stop: () => {
      clearInterval(t);
      return peak.map((p, i) => p - base[i]!);
    },
  };
}

describe("pysh sh", () => {
  test("bytes exact on stdout and stderr, the command's exit code", async () => {
    const r = await pysh(["sh", "n1", "--", "printf", "'a\\377\\000b'; printf 'e\\376' >&2; exit 3"]);
    expect([...r.out]).toEqual([0x61, 0xff, 0x00, 0x62]);
    expect(r.stderr).toBe("e\ufffd");
    expect(r.code).toBe(3);
  });

  test("the words joined with spaces, run by the node user's shell, in --cwd with --env", async () => {
    const r = await pysh(["sh", "n1", "--cwd", "/tmp", "--env", "A=b c", "echo", "$A", "$(pwd)", "$HOME"]);
    expect(r.stdout).toBe(`b c /tmp ${n1.e.home}\n`);
    expect(r.code).toBe(0);
  });

  test("a command that does not exist: 127 and the shell's message", async () => {
    const r = await pysh(["sh", "n1", "no-such-command-here"]);
    expect(r.code).toBe(127);
    expect(r.stderr).toMatch(/no-such-command-here.*not found/);
  });

  test("killed by a signal: 128+n", async () => {
    expect((await pysh(["sh", "n1", "kill -9 $$"])).code).toBe(137);
  });

  test("stdin is forwarded when it is not a terminal", async () => {
    const data = new Uint8Array(3_000_000).map((_, i) => i % 251);
    const r = await pysh(["sh", "n1", "--", "sha256sum"], data);
    const want = new Bun.CryptoHasher("sha256").update(data).digest("hex");
    expect(r.stdout.split(" ")[0]).toBe(want);
  });

  test("--timeout on a command ignoring SIGTERM: SIGKILL 3 s later, exit 124 and a message", async () => {
    const t0 = performance.now();
    const r = await pysh(["sh", "n1", "--timeout", "0.5", "--", "trap '' TERM; echo up; sleep 30"]);
    expect(r.code).toBe(124);
    expect(r.stdout).toBe("up\n");
    expect(r.stderr).toContain("timed out after 0.5s on 'n1'");
    expect(performance.now() - t0).toBeGreaterThanOrEqual(3500);
  });

  test("no such node: 255 and the nodes there are", async () => {
    const r = await pysh(["sh", "nope", "true"]);
    expect(r.code).toBe(255);
    expect(r.stderr).toBe("ERR no node 'nope' -- nodes: n1, n2\n");
  });

  test("200 MB of output arrive whole, memory bounded on the hub and the node", async () => {
    const peaks = watchRss([hub.d.pid, n1.pid]);
    const p = Bun.spawn([PYSH, "sh", "n1", "head -c 200000000 /dev/zero"], { env: hub.d.e.env, stdout: "pipe", stderr: "pipe" });
    let n = 0;
    for await (const c of p.stdout) n += c.length;
    expect(await p.exited).toBe(0);
    expect(n).toBe(200_000_000);
    const [hubGrowth, nodeGrowth] = peaks.stop();
    expect(hubGrowth).toBeLessThan(128 << 20);
    expect(nodeGrowth).toBeLessThan(128 << 20);
  }, 120_000);
});

describe("pysh sh --detach / pysh job", () => {
  test("detach returns the id at once; job shows state and output; --wait blocks; list", async () => {
    const d = await pysh(["sh", "--detach", "n1", "--", "echo out; echo err >&2; sleep 0.5; exit 4"]);
    expect(d.code).toBe(0);
    const id = d.stdout.trim();
    expect(id).toMatch(/^[0-9a-f]{12}$/);
    const w = await pysh(["job", "n1", id, "--wait"]);
    expect(w.stdout).toBe("out\n");
    expect(w.stderr).toBe("err\n");
    expect(w.code).toBe(4);
    const info = await pysh(["job", "n1", id]);
    expect(info.stdout).toBe("out\n");
    expect(info.stderr).toContain(`job ${id} on 'n1': exited 4`);
    expect(info.code).toBe(4);
    const j = JSON.parse((await pysh(["job", "n1", id, "--json"])).stdout);
    expect(j).toMatchObject({ id, state: "exited", result: { exit: 4 } });
    expect((await pysh(["job", "n1"])).stdout).toContain(id);
    const missing = await pysh(["job", "n1", "nope"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("no job 'nope'");
  });

  test("--kill ends the whole group: a grandchild forked by the command dies too", async () => {
    const id = (await pysh(["sh", "--detach", "n1", "sleep 60 & echo $!; wait"])).stdout.trim();
    let pid = 0;
    while (!pid) pid = Number((await pysh(["job", "n1", id])).stdout.trim());
    expect(gone(pid)).toBe(false);
    const k = await pysh(["job", "n1", id, "--kill"]);
    expect(k.code).toBe(0);
    expect(k.stderr).toContain(`job ${id} on 'n1' ended: killed by SIGTERM`);
    expect(await waitGone(pid)).toBe(true);
  });
});

describe("fan-out", () => {
  test("-l role=web runs on each matching node, lines prefixed; --json one object per node", async () => {
    const r = await pysh(["sh", "-l", "role=web", "--", "echo hello from $HOME"]);
    expect(r.code).toBe(0);
    expect(r.stdout.split("\n").filter(Boolean).sort()).toEqual([`n1: hello from ${n1.e.home}`, `n2: hello from ${n2.e.home}`]);
    const j = await pysh(["sh", "-l", "tier=b", "--json", "--", "echo x; exit 0"]);
    const objs = j.stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(objs).toEqual([expect.objectContaining({ id: "n2", exit: 0, signal: null, timed_out: false, stdout: "x\n", stderr: "" })]);
    expect(typeof objs[0].duration_ms).toBe("number");
  });

  test("one failing node and one offline node: both reported, exit 1", async () => {
    writeFileSync(join(n2.e.home, "fail-here"), "");
    const n3 = await joinNode(hub, "n3", ["--label", "role=web"]);
    await n3.kill();
    await until(async () => (await hub.node("n3"))?.state === "offline", "the hub to see n3 offline");
    const r = await pysh(["sh", "-l", "role=web", "--json", "--", "test ! -e ~/fail-here"]);
    expect(r.code).toBe(1);
    const byId = Object.fromEntries(r.stdout.trim().split("\n").map((l) => [JSON.parse(l).id, JSON.parse(l)]));
    expect(byId.n1).toMatchObject({ exit: 0, status: "ok" });
    expect(byId.n2).toMatchObject({ exit: 1, status: "failed" });
    expect(byId.n3).toMatchObject({ status: "offline", exit: null });
    expect(r.stderr).toContain("2 of 3 nodes did not succeed");
    await n3[Symbol.asyncDispose]();
  }, 60_000);

  test("--fail-fast: after the first failure no other node starts", async () => {
    writeFileSync(join(n1.e.home, "fail-here"), "");
    try {
      const r = await pysh(["sh", "--all", "--fail-fast", "--max-concurrency", "1", "--json", "--", "test ! -e ~/fail-here"]);
      expect(r.code).toBe(1);
      const byId = Object.fromEntries(r.stdout.trim().split("\n").map((l) => [JSON.parse(l).id, JSON.parse(l)]));
      expect(byId.n1).toMatchObject({ status: "failed", exit: 1 });
      expect(byId.n2).toMatchObject({ status: "skipped", exit: null });
    } finally {
      rmSync(join(n1.e.home, "fail-here"));
    }
  });
});

describe("pysh run on many nodes", () => {
  test("-l grp=a: a cell in session main of each node (created on first use), state kept", async () => {
    const a = await pysh(["run", "-l", "grp=a", "x = 20; print('set')"]);
    expect(a.code).toBe(0);
    expect(a.stdout.split("\n").filter(Boolean).sort()).toEqual(["n1: set", "n2: set"]);
    const b = await pysh(["run", "-l", "grp=a", "--json", "print(x * 2)"]);
    const objs = b.stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(objs.map((o) => [o.id, o.ok, o.output]).sort()).toEqual([
      ["n1", true, "40\n"],
      ["n2", true, "40\n"],
    ]);
    const c = await pysh(["run", "-l", "tier=b", "--session", "other", "1/0"]);
    expect(c.code).toBe(1);
    expect(c.stderr).toContain("ZeroDivisionError");
  });
});

describe("files", () => {
  test("put and get: bytes and mode kept, relative to the node's home, -r for directories", async () => {
    const src = join(hub.d.e.dir, "local.bin");
    writeFileSync(src, crypto.getRandomValues(new Uint8Array(5_000_000)));
    chmodSync(src, 0o640);
    const p = await pysh(["put", "n1", src, "up.bin"]);
    expect(p.stderr).toBe("");
    expect(p.code).toBe(0);
    const there = join(n1.e.home, "up.bin");
    expect(readFileSync(there).equals(readFileSync(src))).toBe(true);
    expect(statSync(there).mode & 0o777).toBe(0o640);
    const back = join(hub.d.e.dir, "back.bin");
    expect((await pysh(["get", "n1", "up.bin", back])).code).toBe(0);
    expect(readFileSync(back).equals(readFileSync(src))).toBe(true);
    const dir = join(hub.d.e.dir, "tree");
    mkdirSync(join(dir, "sub"), { recursive: true });
    writeFileSync(join(dir, "sub", "f"), "nested");
    const noR = await pysh(["put", "n1", dir, "t"]);
    expect(noR.code).toBe(1);
    expect(noR.stderr).toBe(`ERR ${dir} is a directory (use -r)\n`);
    expect((await pysh(["put", "n1", "-r", dir, "t"])).code).toBe(0);
    expect(readFileSync(join(n1.e.home, "t", "sub", "f"), "utf8")).toBe("nested");
    const piped = await pysh(["get", "n1", "t/sub/f", "-"]);
    expect(piped.stdout).toBe("nested");
    expect((await pysh(["put", "n1", "-", "from-stdin"], "via stdin")).code).toBe(0);
    expect(readFileSync(join(n1.e.home, "from-stdin"), "utf8")).toBe("via stdin");
  });

  test("the hub does a local client's end itself; relative paths; streamed when it cannot see the file or is told not to", async () => {
    // the not_local answers the hub gave so far (each is followed by the same transfer streamed)
    // (lines stamped from now on: earlier tests' lines may still be on their way, ~20 ms late)
    const t0 = Date.now();
    const refusals = () =>
      accessLog(hub.d)
        .split("\n")
        .filter((l) => / event=result .*cmd=io .*status=error/.test(l) && Date.parse(/ts=(\S+)/.exec(l)![1]!) >= t0).length;
    const cwd = join(hub.d.e.dir, "elsewhere"); // not the hub's cwd: relative paths are pysh's
    mkdirSync(cwd);
    writeFileSync(join(cwd, "rel.bin"), crypto.getRandomValues(new Uint8Array(3_000_000)));
    chmodSync(join(cwd, "rel.bin"), 0o604);
    expect((await pysh(["put", "n1", "rel.bin", "rel-up.bin"], undefined, { cwd })).code).toBe(0);
    expect(readFileSync(join(n1.e.home, "rel-up.bin")).equals(readFileSync(join(cwd, "rel.bin")))).toBe(true);
    expect(statSync(join(n1.e.home, "rel-up.bin")).mode & 0o777).toBe(0o604);
    const g = await pysh(["get", "n1", "rel-up.bin", "rel-back.bin"], undefined, { cwd });
    expect({ code: g.code, err: g.stderr }).toEqual({ code: 0, err: "" });
    expect(readFileSync(join(cwd, "rel-back.bin")).equals(readFileSync(join(cwd, "rel.bin")))).toBe(true);
    expect(statSync(join(cwd, "rel-back.bin")).mode & 0o777).toBe(0o604);
    expect(existsSync(join(hub.d.e.dir, "rel-back.bin"))).toBe(false);
    // directories (-r) both ways
    mkdirSync(join(cwd, "tree2", "sub"), { recursive: true });
    writeFileSync(join(cwd, "tree2", "sub", "f"), "nested");
    expect((await pysh(["put", "n1", "-r", "tree2", "t2"], undefined, { cwd })).code).toBe(0);
    expect((await pysh(["get", "n1", "-r", "t2", "t2-back"], undefined, { cwd })).code).toBe(0);
    expect(readFileSync(join(cwd, "t2-back", "sub", "f"), "utf8")).toBe("nested");
    // a local error in the hub's words, with the path as the user wrote it
    writeFileSync(join(cwd, "a-file"), "");
    const nd = await pysh(["get", "n1", "-r", "t2", "a-file"], undefined, { cwd });
    expect(nd.stderr).toBe("ERR a-file exists and is not a directory\n");
    await until(() => refusals() >= 1, "the failed get in the access log");
    expect(refusals()).toBe(1); // that one, refused by the engine; none was not_local
    // told not to: streamed through the hub, the same result
    const direct0 = { PYTHOND_FILES_DIRECT: "0" };
    expect((await pysh(["put", "n1", "rel.bin", "rel-up2.bin"], undefined, { cwd, env: direct0 })).code).toBe(0);
    expect((await pysh(["get", "n1", "rel-up2.bin", "rel-back2.bin"], undefined, { cwd, env: direct0 })).code).toBe(0);
    expect(readFileSync(join(cwd, "rel-back2.bin")).equals(readFileSync(join(cwd, "rel.bin")))).toBe(true);
    // a pysh in its own mount namespace sees another file under the same name: the hub must not
    // read its own file, nor write where pysh cannot see it; it says not_local and pysh streams
    const shadow = join(hub.d.e.dir, "shadow");
    mkdirSync(shadow);
    writeFileSync(join(shadow, "f"), "the hub's view");
    if (process.getuid?.() !== 0 || Bun.spawnSync(["unshare", "-m", "true"]).exitCode !== 0) return void console.warn("no mount namespaces here: the not_local fallback is not exercised");
    const script = `mount -t tmpfs none ${shadow} && printf "pysh's view" > ${shadow}/f && ${PYSH} put n1 ${shadow}/f ns.txt && ${PYSH} get n1 ns.txt ${shadow}/g && cat ${shadow}/g`;
    const ns = await pysh([], undefined, { argv: ["unshare", "-m", "sh", "-c", script] });
    expect({ code: ns.code, out: ns.stdout, err: ns.stderr }).toEqual({ code: 0, out: "pysh's view", err: "" });
    expect(readFileSync(join(n1.e.home, "ns.txt"), "utf8")).toBe("pysh's view");
    expect(existsSync(join(shadow, "g"))).toBe(false);
    expect(readFileSync(join(shadow, "f"), "utf8")).toBe("the hub's view");
    await until(() => refusals() >= 3, "the two not_local answers in the access log");
    expect(refusals()).toBe(3);
  });

  test("Ctrl-C during a put the hub does itself: the hub stops it, the part file stays, the next put resumes", async () => {
    const src = await blocksFile(join(hub.d.e.dir, "stopped.bin"), 300);
    const t0 = Date.now();
    const p = Bun.spawn([PYSH, "put", "n1", src, "stopped.bin"], { env: hub.d.e.env, stdout: "ignore", stderr: "pipe" });
    const part = () => readdirSync(n1.e.home).find((x) => x.startsWith(".stopped.bin.") && x.endsWith(".pysh-part"));
    while (!(part() && statSync(join(n1.e.home, part()!)).size > 5_000_000)) await Bun.sleep(10);
    p.kill("SIGINT");
    expect(await p.exited).toBe(130);
    // the hub's io command ends (its result line) once it has stopped sending: the part is short
    await until(
      () => accessLog(hub.d).split("\n").some((l) => / event=result .*cmd=io .*status=error/.test(l) && Date.parse(/ts=(\S+)/.exec(l)![1]!) >= t0),
      "the stopped put's result in the access log",
    );
    expect(statSync(join(n1.e.home, part()!)).size).toBeLessThan(300 << 20);
    expect(existsSync(join(n1.e.home, "stopped.bin"))).toBe(false);
    const again = await pysh(["put", "n1", src, "stopped.bin"]);
    expect({ code: again.code, err: again.stderr }).toEqual({ code: 0, err: expect.stringMatching(/^pysh: resumed: \S+ \S+ were already on 'n1'/) });
    expect(readFileSync(join(n1.e.home, "stopped.bin")).equals(readFileSync(src))).toBe(true);
    rmSync(src);
  });

  test("1 GiB round trip: SHA-256 equal, memory bounded on the hub and the node", async () => {
    const src = await blocksFile(join(hub.d.e.dir, "gig.bin"), 1024);
    const peaks = watchRss([hub.d.pid, n1.pid]);
    expect((await pysh(["put", "n1", src, "gig.bin"])).code).toBe(0);
    const back = join(hub.d.e.dir, "gig.back");
    expect((await pysh(["get", "n1", "gig.bin", back])).code).toBe(0);
    const [hubGrowth, nodeGrowth] = peaks.stop();
    const sha = async (f: string) => {
      const h = new Bun.CryptoHasher("sha256");
      for await (const c of Bun.file(f).stream()) h.update(c);
      return h.digest("hex");
    };
    expect(statSync(back).size).toBe(1 << 30);
    expect(await sha(back)).toBe(await sha(src));
    expect(hubGrowth).toBeLessThan(160 << 20);
    expect(nodeGrowth).toBeLessThan(160 << 20);
    for (const f of [src, back, join(n1.e.home, "gig.bin")]) rmSync(f);
  }, 300_000);

  test("clear errors: no such file on either side, a read-only directory on the node", async () => {
    const r = await pysh(["get", "n1", "nothing-here", join(hub.d.e.dir, "x")]);
    expect(r.stderr).toBe(`ERR no such file or directory: ${join(n1.e.home, "nothing-here")}\n`);
    const l = await pysh(["put", "n1", "/no/such/local", "x"]);
    expect(l.stderr).toBe("ERR no such file or directory: /no/such/local\n");
    // a read-only directory: as root, permission bits do not stop us, so make the node's dir a
    // read-only bind of itself when we can; else plain bits (effective for other users)
    const ro = join(n1.e.home, "ro");
    mkdirSync(ro);
    const mounted = process.getuid?.() === 0 && Bun.spawnSync(["mount", "--bind", "-o", "ro", ro, ro]).exitCode === 0;
    if (mounted) Bun.spawnSync(["mount", "-o", "remount,bind,ro", ro]);
    else chmodSync(ro, 0o555);
    try {
      const src = join(hub.d.e.dir, "f.txt");
      writeFileSync(src, "x");
      const w = await pysh(["put", "n1", src, "ro/"]);
      expect(w.code).toBe(1);
      expect(w.stderr).toMatch(/^ERR (read-only file system: cannot write|permission denied writing) .*ro\/f\.txt\n$/);
      expect(existsSync(join(ro, "f.txt"))).toBe(false);
    } finally {
      if (mounted) Bun.spawnSync(["umount", ro]);
    }
  });

  test("disk full on the receiving side, node or local: a clear error, nothing left under the final name", async () => {
    using there = tmpfs("1m");
    using here = tmpfs("1m");
    if (!there || !here) return void console.warn("cannot mount a tmpfs here: disk full not exercised end to end");
    const src = join(hub.d.e.dir, "too-big.bin");
    writeFileSync(src, crypto.getRandomValues(new Uint8Array(3_000_000)));
    const put = await pysh(["put", "n1", src, join(there.path, "too-big.bin")]);
    expect(put.code).toBe(1);
    expect(put.stderr).toBe(`ERR no space left on the device writing ${join(there.path, "too-big.bin")}\n`);
    expect(readdirSync(there.path)).toEqual([]);
    expect((await pysh(["put", "n1", src, "fits.bin"])).code).toBe(0);
    const get = await pysh(["get", "n1", "fits.bin", join(here.path, "fits.bin")]);
    expect(get.code).toBe(1);
    expect(get.stderr).toBe(`ERR no space left on the device writing ${join(here.path, "fits.bin")}\n`);
    expect(readdirSync(here.path)).toEqual([]);
  });
});

describe("shell", () => {
  let winLike: Node | undefined; // a node on bun-pty, the PTY backend of Windows (ConPTY there)
  afterAll(async () => {
    await winLike?.[Symbol.asyncDispose]();
  });

  for (const backend of ["bun", "bun-pty"] as const)
  test(`a login shell in a PTY (${backend}): type, detach with Ctrl-], list, attach again (screen replayed), exit code`, async () => {
    let node = "n1";
    if (backend === "bun-pty") {
      const t = await hub.joinToken();
      winLike = new Node();
      winLike.e.env.PYTHOND_PTY = "bun-pty";
      await winLike.join([`wss://127.0.0.1:${hub.port}`, "--token", t.token, "--fingerprint", t.fingerprint, "--id", "n-pty", "--heartbeat", "1"]);
      node = "n-pty";
    }
    let screen = "";
    const waiters: (() => void)[] = [];
    const see = async (s: string) => {
      while (!screen.includes(s)) await new Promise<void>((r) => waiters.push(r));
    };
    const open = (args: string[]) =>
      Bun.spawn([PYSH, ...args], {
        env: { ...hub.d.e.env, SHELL: "/bin/sh" },
        terminal: {
          cols: 100,
          rows: 30,
          data: (_t, d) => {
            screen += Buffer.from(d).toString();
            for (const w of waiters.splice(0)) w();
          },
        },
      });
    const a = open(["shell", node]);
    await see("Ctrl-] detaches");
    a.terminal!.write("echo marker-$((6*7)) \u20ac\r");
    await see("marker-42 \u20ac");
    a.terminal!.write("\x1d");
    expect(await a.exited).toBe(0);
    await see("detached from shell");
    const id = new RegExp(`detached from shell (\\S+) on '${node}'`).exec(screen)![1]!;
    const list = await pysh(["shell", node, "--list"]);
    expect(list.stdout).toContain(id);
    screen = "";
    const b = open(["shell", node, "--attach", id]);
    await see("marker-42"); // the recent screen, replayed
    b.terminal!.write("exit 7\r");
    expect(await b.exited).toBe(7);
  });

  test("--linger S: a shell nobody watches is hung up that long after its last viewer left, and leaves the list", async () => {
    let screen = "";
    const a = Bun.spawn([PYSH, "shell", "n1", "--linger", "1"], {
      env: { ...hub.d.e.env, SHELL: "/bin/sh" },
      terminal: { cols: 80, rows: 24, data: (_t, d) => void (screen += Buffer.from(d).toString()) },
    });
    await until(() => screen.includes("Ctrl-] detaches"), "the shell's banner");
    a.terminal!.write("\x1d");
    expect(await a.exited).toBe(0);
    await until(() => /detached from shell (\S+) on 'n1'/.test(screen), "the detach message");
    const id = /detached from shell (\S+) on 'n1'/.exec(screen)![1]!;
    expect((await pysh(["shell", "n1", "--list"])).stdout).toContain(id);
    await until(async () => !(await pysh(["shell", "n1", "--list"])).stdout.includes(id), "the lingering shell to end", 15_000);
    const attach = await onTerminal(["shell", "n1", "--attach", id]);
    expect(attach.code).not.toBe(0);
    expect(attach.screen).toBe(`ERR no shell '${id}' (none running)\r\n`);
    const bad = await onTerminal(["shell", "n1", "--linger", "0"]);
    expect(bad.code).not.toBe(0);
    expect(bad.screen).toBe("ERR --linger takes a number of seconds > 0 (got 0)\r\n");
  });

  test("--read-only: a second viewer sees what the first types, and its own keys reach nothing", async () => {
    const screens = { a: "", b: "" };
    const open = (who: "a" | "b", args: string[]) =>
      Bun.spawn([PYSH, "shell", "n1", ...args], {
        env: { ...hub.d.e.env, SHELL: "/bin/sh" },
        terminal: { cols: 80, rows: 24, data: (_t, d) => void (screens[who] += Buffer.from(d).toString()) },
      });
    const a = open("a", []);
    await until(() => screens.a.includes("Ctrl-] detaches"), "the shell's banner");
    a.terminal!.write("echo ready-$((1+1))\r");
    await until(() => screens.a.includes("ready-2"), "the first command");
    const id = /pysh: shell (\S+) on 'n1'/.exec(screens.a)![1]!; // from the banner
    const b = open("b", ["--attach", id, "--read-only"]);
    await until(() => screens.b.includes("ready-2"), "the replayed screen on the read-only viewer");
    expect(screens.b).toContain(`pysh: shell ${id} on 'n1' (read-only); Ctrl-] detaches`);
    b.terminal!.write("echo typed-by-b\r");
    a.terminal!.write("echo from-a-$((2+3))\r");
    await until(() => screens.b.includes("from-a-5"), "the first viewer's command on the second");
    expect(screens.a).not.toContain("typed-by-b");
    expect(screens.b).not.toContain("typed-by-b");
    b.terminal!.write("\x1d");
    expect(await b.exited).toBe(0);
    a.terminal!.write("exit 3\r");
    expect(await a.exited).toBe(3);
  });
});

/** pysh on a real terminal (a PTY for stdin, stdout and stderr): what the user's screen gets, raw. */
async function onTerminal(args: string[]): Promise<{ code: number; screen: string }> {
  let screen = "";
  let eof!: () => void;
  const drained = new Promise<void>((r) => (eof = r));
  const p = Bun.spawn([PYSH, ...args], {
    env: hub.d.e.env,
    cwd: hub.d.e.dir,
    terminal: { cols: 120, rows: 30, data: (_t, d) => void (screen += Buffer.from(d).toString()), exit: () => eof() },
  });
  const code = await p.exited;
  await drained; // the PTY read to its end: all pysh wrote is on the screen
  p.terminal!.close();
  return { code, screen };
}

describe("on a terminal", () => {
  test("put and get draw a progress line (bytes, rate, ETA) on stderr and clear it at the end", async () => {
    const src = join(hub.d.e.dir, "progress.bin");
    writeFileSync(src, crypto.getRandomValues(new Uint8Array(3_000_000)));
    for (const args of [["put", "n1", src, "progress.bin"], ["get", "n1", "progress.bin", join(hub.d.e.dir, "progress-back.bin")]]) {
      const r = await onTerminal(args);
      expect(r.code).toBe(0);
      // the last redraw, then the line cleared, then what was done (on a terminal only)
      expect(r.screen).toMatch(/\r\x1b\[K\S*progress(-back)?\.bin 100% 3\.0 MB of 3\.0 MB \d+ [kMG]?B\/s ETA 0s\r\x1b\[Kpysh: (put|get) \S+ -> \S+ \(1 file, 3\.0 MB, SHA-256 verified\)\r\n$/);
    }
    expect(readFileSync(join(hub.d.e.dir, "progress-back.bin")).equals(readFileSync(src))).toBe(true);
  });

  test("fan-out: each node's prefix in its own colour, and a summary table at the end", async () => {
    const r = await onTerminal(["sh", "-l", "grp=a", "--", "echo on-$(basename $HOME)"]);
    expect(r.code).toBe(0);
    const prefix = /\x1b\[(\d+)m(n[12]):\x1b\[0m on-/g;
    const colours = new Map([...r.screen.matchAll(prefix)].map((m) => [m[2], m[1]]));
    expect([...colours.keys()].sort()).toEqual(["n1", "n2"]);
    expect(colours.get("n1")).not.toBe(colours.get("n2"));
    expect(r.screen).toMatch(/\n {2}n1 +exited 0 {2}\d+\.\d\ds\r?\n/);
    expect(r.screen).toMatch(/\n {2}n2 +exited 0 {2}\d+\.\d\ds\r?\n/);
  });
});

describe("forward", () => {
  test("connections to the local port reach HOST:PORT as the node sees it; Ctrl-C stops", async () => {
    const echo = createServer((s) => s.pipe(s));
    await new Promise<void>((r) => echo.listen(0, "127.0.0.1", r));
    const port = (echo.address() as { port: number }).port;
    const p = Bun.spawn([PYSH, "forward", "n1", `0:127.0.0.1:${port}`], { env: hub.d.e.env, stdout: "pipe", stderr: "pipe" });
    const { LineWatcher } = await import("./harness.ts");
    const w = new LineWatcher(p.stderr as ReadableStream<Uint8Array>);
    const m = await w.waitFor(/forwarding 127\.0\.0\.1:(\d+) ->/);
    const local = Number(m[1]);
    const got = await Promise.all(
      [1, 2, 3].map(
        (i) =>
          new Promise<string>((resolve) => {
            const s = connect({ port: local, host: "127.0.0.1" }, () => s.end(`ping ${i}`));
            let t = "";
            s.on("data", (d) => (t += d));
            s.on("close", () => resolve(t));
          }),
      ),
    );
    expect(got).toEqual(["ping 1", "ping 2", "ping 3"]);
    p.kill("SIGINT");
    expect(await p.exited).toBe(0);
    echo.close();
  });
});

describe("faults", () => {
  test("a link cut in the middle of a shell and of a transfer: the shell waits, the copy resumes", async () => {
    const relay = await Relay.start(hub.port);
    const n5 = await joinNode(hub, "n5", [], relay.port);
    try {
      // a shell with something on its screen
      let screen = "";
      const waiters: (() => void)[] = [];
      const see = async (t: string) => {
        while (!screen.includes(t)) await new Promise<void>((r) => waiters.push(r));
      };
      const open = (args: string[]) =>
        Bun.spawn([PYSH, ...args], {
          env: { ...hub.d.e.env, SHELL: "/bin/sh" },
          terminal: { cols: 80, rows: 24, data: (_t, d) => ((screen += Buffer.from(d).toString()), waiters.splice(0).forEach((w) => w())) },
        });
      const sh = open(["shell", "n5"]);
      await see("Ctrl-] detaches");
      const id = /shell (\S+) on 'n5'/.exec(screen)![1]!;
      sh.terminal!.write("echo kept-$((2*21))\r");
      await see("kept-42");
      // a big put, cut once some of it has arrived
      const src = await blocksFile(join(hub.d.e.dir, "big.bin"), 300);
      const put = Bun.spawn([PYSH, "put", "n5", src, "big.bin"], { env: hub.d.e.env, stdout: "pipe", stderr: "pipe" });
      const part = () => readdirSync(n5.e.home).find((x) => x.endsWith(".pysh-part"));
      while (!(part() && statSync(join(n5.e.home, part()!)).size > 5_000_000)) await Bun.sleep(20);
      relay.stall();
      const putErr = await new Response(put.stderr).text();
      expect({ code: await put.exited, putErr }).toEqual({ code: 1, putErr: expect.stringMatching(/^ERR .*(link lost|connection lost)/) });
      expect(existsSync(join(n5.e.home, "big.bin"))).toBe(false); // nothing under the final name
      expect({ code: await sh.exited, screen: screen.slice(-300) }).toEqual({ code: 0, screen: expect.stringContaining("detached from shell") }); // the viewer learned the link went
      relay.heal();
      await n5.log.waitFor(/hub link back/);
      const again = await pysh(["put", "n5", src, "big.bin"]);
      expect({ code: again.code, err: again.stderr }).toMatchObject({ code: 0 });
      expect(again.stderr).toMatch(/resumed: \S+ \S+ were already on 'n5'/);
      expect(new Bun.CryptoHasher("sha256").update(readFileSync(join(n5.e.home, "big.bin"))).digest("hex")).toBe(
        new Bun.CryptoHasher("sha256").update(readFileSync(src)).digest("hex"),
      );
      screen = "";
      const back = open(["shell", "n5", "--attach", id]);
      await see("kept-42"); // still there, screen replayed
      back.terminal!.write("exit 5\r");
      expect(await back.exited).toBe(5);
    } finally {
      await n5[Symbol.asyncDispose]();
      relay.stop();
    }
  }, 90_000);

  test("a link cut in the middle of a command: 255, the command runs on, pysh job has it all", async () => {
    const relay = await Relay.start(hub.port);
    const n4 = await joinNode(hub, "n4", [], relay.port);
    try {
      const p = Bun.spawn([PYSH, "sh", "n4", "--", "echo first; sleep 4; echo second"], { env: hub.d.e.env, stdout: "pipe", stderr: "pipe" });
      const { LineWatcher } = await import("./harness.ts");
      const out = new LineWatcher(p.stdout as ReadableStream<Uint8Array>);
      await out.waitFor(/first/);
      relay.stall();
      const code = await p.exited;
      const err = await new Response(p.stderr).text();
      expect(code).toBe(255);
      const id = /job ([0-9a-f]{12})/.exec(err)![1]!;
      expect(err).toContain(`it is still running there (job ${id}); its output so far and the rest: pysh job n4 ${id} --wait`);
      relay.heal();
      await n4.log.waitFor(/hub link back/);
      const w = await pysh(["job", "n4", id, "--wait"]);
      expect(w.stdout).toBe("first\nsecond\n");
      expect(w.code).toBe(0);
    } finally {
      await n4[Symbol.asyncDispose]();
      relay.stop();
    }
  }, 60_000);
});
