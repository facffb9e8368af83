/**
 * `pysh mcp` driven over stdio by the official SDK's client, against a real daemon: every tool,
 * the soft deadline, progress notifications, truncation and byte ranges, `\r` collapse, a
 * matplotlib figure as an image (sessions in PYTHOND_TEST_PYTHON, which scripts/pyenv.ts makes
 * with matplotlib), a killed session, interrupts, input(). Cells that must still be running
 * wait for a file the test creates, never for time.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PYSH, startDaemon, until, type Daemon } from "./harness.ts";

let d: Daemon;
let mcp: Client;
const stderr: string[] = [];

type Result = { content: Array<{ type: string; text?: string; data?: string; mimeType?: string }>; isError?: boolean };

async function call(name: string, args: Record<string, unknown>, opts: { onprogress?: (p: { progress: number; message?: string }) => void } = {}): Promise<Result> {
  return (await mcp.callTool({ name, arguments: args }, undefined, { ...opts, timeout: 150_000 })) as Result;
}
const textOf = (r: Result) => r.content.filter((c) => c.type === "text").map((c) => c.text).join("\n");
/** Python code that waits until `flag` exists (the test creates it when it is ready). */
const waitFlag = (flag: string) => `import os, time\nwhile not os.path.exists(${JSON.stringify(flag)}): time.sleep(0.01)`;

beforeAll(async () => {
  d = await startDaemon();
  // A default deadline far above any cell here (a loaded CI machine imports matplotlib slowly);
  // the soft-deadline tests pass their own.
  const env = { ...d.e.env, PYTHOND_MCP_DEADLINE: "120" };
  const transport = new StdioClientTransport({ command: PYSH, args: ["mcp"], env, cwd: d.e.dir, stderr: "pipe" });
  transport.stderr?.on("data", (b: Buffer) => stderr.push(b.toString()));
  mcp = new Client({ name: "pythond-test", version: "1" });
  await mcp.connect(transport);
});
afterAll(async () => {
  await mcp?.close();
  await d?.[Symbol.asyncDispose]();
});

test("tools are listed with schemas", async () => {
  const { tools } = await mcp.listTools();
  expect(tools.map((t) => t.name).sort()).toEqual(
    [
      ...["cell_status", "interrupt", "kill_session", "list_sessions", "list_variables", "new_session", "read_output", "run", "wait"],
      ...["list_nodes", "node_sh", "node_job", "node_read_file", "node_write_file"], // test/e2e/mcp-nodes.test.ts
    ].sort(),
  );
  const run = tools.find((t) => t.name === "run")!;
  expect(Object.keys(run.inputSchema.properties ?? {})).toEqual(expect.arrayContaining(["session", "code", "timeout", "deadline"]));
  expect(run.inputSchema.required).toEqual(expect.arrayContaining(["session", "code"]));
});

test("new_session, run (REPL rule, full result), list_sessions, list_variables, errors", async () => {
  expect(textOf(await call("new_session", { name: "m1" }))).toMatch(/^OK session 'm1' created \(pid \d+/);
  const r = await call("run", { session: "m1", code: "x = 41\nprint('hi')\nx + 1" });
  expect(r.isError).toBeUndefined();
  expect(textOf(r)).toMatch(/^cell [0-9a-f]{12} done in [\d.]+ s; session 'm1' alive\nhi\n42$/);
  expect(textOf(await call("list_sessions", {}))).toMatch(/^m1: alive pid=\d+$/m);
  expect(textOf(await call("list_variables", { session: "m1" })).split("\n")).toContain("x");
  const bad = await call("run", { session: "m1", code: "print('before')\n1/0" });
  expect(bad.isError).toBe(true);
  expect(textOf(bad)).toMatch(/raised .*session 'm1' alive, namespace kept\nbefore\nTraceback[\s\S]*ZeroDivisionError/);
  const none = await call("run", { session: "nope", code: "1" });
  expect(none.isError).toBe(true);
  expect(textOf(none)).toStartWith("ERR no_session: no session 'nope'");
  expect(textOf(await call("new_session", { name: "m1" }))).toStartWith("ERR session_exists");
  expect(textOf(await call("run", { session: "m1", code: "input('name? ')" }))).toContain("input() is not available");
});

test("soft deadline: the cell id and output so far, nothing stopped; wait and cell_status pick it up", async () => {
  const flag = join(d.e.dir, "flag-soft");
  const r = await call("run", { session: "m1", code: `print('started', flush=True)\n${waitFlag(flag)}\nprint('finished')`, deadline: 0.5 });
  const t = textOf(r);
  const id = /cell ([0-9a-f]{12}) still running after 0.5 s; nothing was stopped/.exec(t)?.[1];
  expect(id).toBeDefined();
  expect(t).toEndWith("Output so far:\nstarted");
  expect(textOf(await call("cell_status", { session: "m1", cell_id: id }))).toMatch(new RegExp(`^cell ${id}: running[^\\n]*\\nstarted$`));
  expect(textOf(await call("wait", { session: "m1", cell_id: id, deadline: 0.2 }))).toContain("still running");
  writeFileSync(flag, "");
  expect(textOf(await call("wait", { session: "m1", cell_id: id }))).toMatch(new RegExp(`^cell ${id} done.*\\nstarted\\nfinished$`));
  // A cell this server did not run (fired elsewhere): the daemon's own wait and poll.
  const fired = await d.pysh(["fire", "m1", "print('from pysh')"]);
  const fid = JSON.parse(fired.stdout).cell_id as string;
  expect(textOf(await call("wait", { session: "m1", cell_id: fid }))).toMatch(/done[\s\S]*\nfrom pysh$/);
  expect(textOf(await call("cell_status", { session: "m1", cell_id: fid }))).toBe(`cell ${fid}: done\nfrom pysh`);
});

test("a run queued behind a running cell answers at its deadline with a handle to wait on", async () => {
  const flag = join(d.e.dir, "flag-queue");
  const first = await call("run", { session: "m1", code: waitFlag(flag), deadline: 0.3 });
  const firstId = /cell ([0-9a-f]{12}) still running/.exec(textOf(first))![1]!;
  const second = await call("run", { session: "m1", code: "print('second ran')", deadline: 0.3 });
  const t = textOf(second);
  expect(t).toContain(`not started after 0.3 s: queued behind the running cell(s) ${firstId} of session 'm1'; nothing was stopped`);
  const handle = /cell_id="(queued-\d+)"/.exec(t)![1]!;
  expect(textOf(await call("cell_status", { session: "m1", cell_id: handle }))).toStartWith(`cell ${handle}: queued (not started)`);
  writeFileSync(flag, "");
  expect(textOf(await call("wait", { session: "m1", cell_id: handle }))).toMatch(/^cell [0-9a-f]{12} done.*\nsecond ran$/);
  expect(textOf(await call("wait", { session: "m1", cell_id: firstId }))).toMatch(/^cell [0-9a-f]{12} done/);
});

test("progress notifications while a cell runs (the client sent a token)", async () => {
  const flag = join(d.e.dir, "flag-progress");
  const seen: Array<{ progress: number; message?: string }> = [];
  const r = await call(
    "run",
    { session: "m1", code: `print('step 1', flush=True)\n${waitFlag(flag)}\nprint('step 2')` },
    {
      onprogress: (p) => {
        seen.push(p);
        writeFileSync(flag, ""); // the first notification lets the cell finish
      },
    },
  );
  expect(seen.length).toBeGreaterThan(0);
  expect(seen[0]!.message).toMatch(/^running [\d.]+ s: step 1$/);
  expect(textOf(r)).toMatch(/done[\s\S]*step 1\nstep 2$/);
});

test("interrupt reports what it interrupted; the session survives", async () => {
  const r = await call("run", { session: "m1", code: waitFlag(join(d.e.dir, "never")), deadline: 0.3 });
  const id = /cell ([0-9a-f]{12}) still running/.exec(textOf(r))![1]!;
  expect(textOf(await call("interrupt", { session: "m1" }))).toBe(`OK int m1: 1 run (interrupted)\nstopped: ${id}`);
  const w = await call("wait", { session: "m1", cell_id: id });
  expect(textOf(w)).toMatch(/raised[\s\S]*KeyboardInterrupt/);
  expect(textOf(await call("run", { session: "m1", code: "print(x)" }))).toEndWith("\n41");
  expect(textOf(await call("interrupt", { session: "m1" }))).toBe("OK no running cells in m1");
  // A thread blocked in C code does not stop: the answer says so instead of claiming it did.
  const flag = join(d.e.dir, "flag-blocked");
  const fired = await d.pysh(["fire", "m1", `import socket\na, b = socket.socketpair()\nopen(${JSON.stringify(flag)}, "w").close()\nb.recv(1)`]);
  const fid = JSON.parse(fired.stdout).cell_id as string;
  await until(() => existsSync(flag), "the fire cell to block in recv");
  const t = textOf(await call("interrupt", { session: "m1" }));
  expect(t).toStartWith("OK int m1: 1 thread (best-effort)\nstill running 2 s after the interrupt: " + fid);
  expect(t).toContain("kill_session");
  await call("run", { session: "m1", code: "a.send(b'x')" }); // unblock it
  expect(textOf(await call("wait", { session: "m1", cell_id: fid }))).toMatch(/^cell [0-9a-f]{12} (done|raised)/);
});

test("long output: head and tail with the total size; read_output pages any byte range; \\r collapsed", async () => {
  const code = "print('HEAD')\nfor i in range(4000): print('line %05d' % i)\nprint('TAIL')";
  const r = await call("run", { session: "m1", code });
  const t = textOf(r);
  const id = /^cell ([0-9a-f]{12}) done/.exec(t)![1]!;
  expect(t.length).toBeLessThan(13_000);
  expect(t).toContain("\nHEAD\nline 00000\n");
  expect(t).toEndWith("line 03999\nTAIL");
  const total = 5 + 4000 * 11 + 5;
  expect(t).toContain(`[... output truncated: ${total} bytes in all`);
  expect(t).toContain(`read_output(session="m1", cell_id="${id}", offset, length)`);
  const page = textOf(await call("read_output", { session: "m1", cell_id: id, offset: 5 + 11 * 2000, length: 22 }));
  expect(page).toBe(`line 02000\nline 02001\n\n[bytes ${5 + 11 * 2000}-${5 + 11 * 2002} of ${total}; next: offset=${5 + 11 * 2002}]`);
  const end = textOf(await call("read_output", { session: "m1", cell_id: id, offset: total - 5 }));
  expect(end).toEndWith(`TAIL\n\n[bytes ${total - 5}-${total} of ${total}; end of output]`);
  const bar = await call("run", { session: "m1", code: "import sys\nfor i in range(0, 101, 5): sys.stdout.write('\\rtraining %3d%%' % i)\nprint()\nprint('done')" });
  expect(textOf(bar)).toMatch(/alive\ntraining 100%\ndone$/);
});

test("a matplotlib figure comes back as an image with the full file's path; matplotlib is never imported unasked", async () => {
  const python = process.env.PYTHOND_TEST_PYTHON;
  expect(python).toBeDefined(); // scripts/test.ts sets it (scripts/pyenv.ts installs matplotlib there)
  await call("new_session", { name: "fig", python });
  expect(textOf(await call("run", { session: "fig", code: "import sys\nprint('matplotlib' in sys.modules)" }))).toEndWith("\nFalse");
  const r = await call("run", {
    session: "fig",
    code: "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\nplt.figure(figsize=(12, 8), dpi=100)\nplt.plot([1, 3, 2])\nplt.show()\nprint('after')",
  });
  const t = textOf(r);
  const m = /\[figure: (\/\S+\.png) \((\d+)x(\d+)\)\]\nafter$/.exec(t);
  expect(m).not.toBeNull();
  const [, path, w, h] = m as unknown as [string, string, string, string];
  expect([Number(w), Number(h)]).toEqual([1200, 800]);
  const full = readFileSync(path);
  expect(full.subarray(1, 4).toString()).toBe("PNG");
  expect(full.readUInt32BE(16)).toBe(1200); // IHDR width
  const imgs = r.content.filter((c) => c.type === "image");
  expect(imgs.length).toBe(1);
  expect(imgs[0]!.mimeType).toBe("image/png");
  const png = Buffer.from(imgs[0]!.data!, "base64");
  expect(png.subarray(1, 4).toString()).toBe("PNG");
  expect(png.readUInt32BE(16)).toBe(800); // downscaled: the longest side is 800 px
  expect(png.length).toBeLessThan(full.length);
  expect(t).not.toMatch(/[A-Za-z0-9+/]{200,}/); // no base64 in the text
  // The cell's last value being a figure shows it too (instead of its repr).
  const last = await call("run", { session: "fig", code: "fig = plt.figure(figsize=(4, 3))\nfig.gca().bar([1, 2], [3, 4])\nfig" });
  expect(textOf(last)).toMatch(/\[figure: \/\S+\.png \(400x300\)\]$/);
  expect(last.content.filter((c) => c.type === "image").length).toBe(1);
  expect(existsSync(join(d.e.home, ".pythond", "sessions", "fig", "figures"))).toBe(true);
});

test("a killed session: the running cell and later calls say the session died and the namespace is gone", async () => {
  await call("new_session", { name: "doomed" });
  await call("run", { session: "doomed", code: "important = 1" });
  const r = await call("run", { session: "doomed", code: waitFlag(join(d.e.dir, "never")), deadline: 0.3 });
  const id = /cell ([0-9a-f]{12}) still running/.exec(textOf(r))![1]!;
  const pid = Number(/pid=(\d+)/.exec(textOf(await call("list_sessions", {})).split("\n").find((l) => l.startsWith("doomed:"))!)![1]);
  process.kill(pid, "SIGKILL");
  const w = await call("wait", { session: "doomed", cell_id: id });
  expect(w.isError).toBe(true);
  expect(textOf(w)).toMatch(/^session died: session 'doomed' died during the cell \(.*\)\nIts namespace is gone/);
  await until(async () => textOf(await call("list_sessions", {})).includes("doomed: dead"), "doomed listed dead");
  const again = await call("run", { session: "doomed", code: "print(important)" });
  expect(textOf(again)).toMatch(/^session died: session 'doomed' is dead .*\nIts namespace is gone.*new_session\(name="doomed", replace=true\)/);
  expect(textOf(await call("new_session", { name: "doomed", replace: true }))).toStartWith("OK session 'doomed' created");
  expect(textOf(await call("run", { session: "doomed", code: "'important' in dir()" }))).toEndWith("\nFalse");
  expect(textOf(await call("kill_session", { name: "doomed" }))).toBe("OK killed session 'doomed' (its namespace is gone)");
  expect(textOf(await call("list_variables", { session: "doomed" }))).toStartWith("ERR no_session");
});

test("the daemon dies mid-cell and comes back: the cell ran on, and wait gets it from the new daemon", async () => {
  const flag = join(d.e.dir, "flag-restart");
  const r = await call("run", { session: "m1", code: `print('before', flush=True)\n${waitFlag(flag)}\nprint('after')`, deadline: 0.3 });
  const id = /cell ([0-9a-f]{12}) still running/.exec(textOf(r))![1]!;
  d.proc.kill("SIGKILL");
  await d.proc.exited;
  const broken = await call("wait", { session: "m1", cell_id: id });
  expect(broken.isError).toBe(true);
  expect(textOf(broken)).toContain(`the connection to the daemon broke while cell ${id} ran`);
  await d.start(); // a new daemon on the same socket adopts the session
  writeFileSync(flag, "");
  expect(textOf(await call("wait", { session: "m1", cell_id: id }))).toMatch(new RegExp(`^cell ${id} done[\\s\\S]*before\\nafter$`));
  expect(textOf(await call("run", { session: "m1", code: "print(x)" }))).toEndWith("\n41");
});

test("pysh mcp --print-config prints a working MCP client entry", async () => {
  const r = await d.pysh(["mcp", "--print-config"]);
  expect(r.code).toBe(0);
  const cfg = JSON.parse(r.stdout) as { mcpServers: { pythond: { command: string; args: string[]; env?: Record<string, string> } } };
  expect(existsSync(cfg.mcpServers.pythond.command)).toBe(true);
  expect(cfg.mcpServers.pythond.args.slice(-1)).toEqual(["mcp"]);
  expect(cfg.mcpServers.pythond.env?.PYTHOND_SOCK).toBe(d.e.sock);
  expect(stderr.join("")).toBe(""); // the server wrote nothing but JSON-RPC (stdout) meanwhile
});
