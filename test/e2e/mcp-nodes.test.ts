/**
 * The node tools of `pysh mcp` over stdio (the SDK's client) against a real hub and real
 * `pythond join` nodes: list_nodes, node_sh (full result, soft deadline, truncation with paging),
 * node_job (wait, status, kill, byte ranges), node_read_file (ranges, binary, errors),
 * node_write_file, a session on a node through run, an unknown node, a node SIGKILLed mid-command.
 * Commands that must still be running wait for a file the test creates, never for time.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PYSH } from "./harness.ts";
import { Hub, joinNode, type Node } from "./fleet-harness.ts";

let hub: Hub;
let n1: Node;
let mcp: Client;

type Result = { content: Array<{ type: string; text?: string }>; isError?: boolean };

async function call(name: string, args: Record<string, unknown>): Promise<Result> {
  return (await mcp.callTool({ name, arguments: args }, undefined, { timeout: 150_000 })) as Result;
}
const textOf = (r: Result) => r.content.filter((c) => c.type === "text").map((c) => c.text).join("\n");
/** A shell loop that ends once `flag` exists. */
const waitFlag = (flag: string) => `while [ ! -e ${flag} ]; do sleep 0.05; done`;

beforeAll(async () => {
  hub = await Hub.start();
  n1 = await joinNode(hub, "n1", ["--label", "role=web"]);
  const env = { ...hub.d.e.env, PYTHOND_MCP_DEADLINE: "120" };
  const transport = new StdioClientTransport({ command: PYSH, args: ["mcp"], env, cwd: hub.d.e.dir, stderr: "pipe" });
  mcp = new Client({ name: "pythond-test", version: "1" });
  await mcp.connect(transport);
});
afterAll(async () => {
  await mcp?.close();
  await n1?.[Symbol.asyncDispose]();
  await hub?.[Symbol.asyncDispose]();
});

test("node tools are listed; list_nodes shows the nodes; a session on a node runs through run", async () => {
  const { tools } = await mcp.listTools();
  expect(tools.map((t) => t.name)).toEqual(expect.arrayContaining(["list_nodes", "node_sh", "node_job", "node_read_file", "node_write_file"]));
  const sh = tools.find((t) => t.name === "node_sh")!;
  expect(sh.inputSchema.required).toEqual(expect.arrayContaining(["node", "command"]));
  expect(textOf(await call("list_nodes", {}))).toMatch(/^n1: online host=\S+ linux\/\S+ labels=role=web/m);
  expect(textOf(await call("new_session", { name: "n1/work" }))).toMatch(/^OK session 'n1\/work' created/);
  const r = await call("run", { session: "n1/work", code: "import os\nos.environ['HOME']" });
  expect(textOf(r)).toMatch(/^cell [0-9a-f]{12} done in [\d.]+ s; session 'n1\/work' alive\n/);
  expect(textOf(r).split("\n")[1]).toBe(n1.e.home);
});

test("node_sh: stdout, stderr and the exit code within the deadline; a failing command is an error result", async () => {
  const ok = await call("node_sh", { node: "n1", command: "echo hello; echo warn >&2" });
  expect(ok.isError).toBeUndefined();
  expect(textOf(ok)).toMatch(/^job [0-9a-f]{12} on 'n1' exited 0 in [\d.]+ s\nstdout:\nhello\n\nstderr:\nwarn$/);
  const cwd = await call("node_sh", { node: "n1", command: "pwd", cwd: "/tmp" });
  expect(textOf(cwd)).toMatch(/exited 0 in [\d.]+ s\n\/tmp$/);
  const bad = await call("node_sh", { node: "n1", command: "exit 3" });
  expect(bad.isError).toBe(true);
  expect(textOf(bad)).toMatch(/exited 3 in [\d.]+ s\n\(no output\)$/);
  const t = await call("node_sh", { node: "n1", command: "sleep 30", timeout: 0.3 });
  expect(textOf(t)).toContain("timed out (exit 124");
  const nul = await call("node_sh", { node: "n1", command: "printf 'a\\000b'" });
  expect(textOf(nul)).toContain("the output is not text (it has NUL bytes)");
});

test("soft deadline: job id and output so far, nothing stopped; node_job status, wait; kill", async () => {
  const flag = join(n1.e.home, "go");
  const r = await call("node_sh", { node: "n1", command: `echo first; ${waitFlag(flag)}; echo second`, deadline: 1 });
  const t = textOf(r);
  expect(r.isError).toBeUndefined();
  const id = /^job ([0-9a-f]{12}) on 'n1' still running after 1 s; nothing was stopped\./.exec(t)![1]!;
  expect(t).toContain(`node_job(node="n1", job_id="${id}")`);
  expect(t).toMatch(/Output so far:\nfirst$/);
  expect(textOf(await call("node_job", { node: "n1", job_id: id, action: "status" }))).toMatch(/running for [\d.]+ s\. .*\nfirst$/s);
  const early = await call("node_job", { node: "n1", job_id: id, deadline: 0.3 });
  expect(textOf(early)).toContain("still running after 0.3 s");
  writeFileSync(flag, "");
  expect(textOf(await call("node_job", { node: "n1", job_id: id }))).toMatch(new RegExp(`^job ${id} on 'n1' exited 0 in [\\d.]+ s\\nfirst\\nsecond$`));

  const long = await call("node_sh", { node: "n1", command: "echo zzz; sleep 60", deadline: 0.5 });
  const lid = /^job ([0-9a-f]{12})/.exec(textOf(long))![1]!;
  const k = await call("node_job", { node: "n1", job_id: lid, action: "kill" });
  expect(textOf(k)).toMatch(new RegExp(`^job ${lid} on 'n1' ended by the kill: killed by SIGTERM \\(exit 143\\)\\nzzz$`));
  // a job this server did not start: the node's record
  const detached = (await hub.pysh(["sh", "--detach", "n1", "--", "echo from-pysh"])).stdout.trim();
  expect(textOf(await call("node_job", { node: "n1", job_id: detached }))).toMatch(/exited 0 \([\d.]+ s\)\nfrom-pysh$/);
  expect(textOf(await call("node_job", { node: "n1", job_id: detached, action: "status" }))).toContain(": echo from-pysh");
}, 60_000);

test("long output: head and tail with the total size; node_job pages any byte range", async () => {
  const r = await call("node_sh", { node: "n1", command: "seq 1 30000" });
  const t = textOf(r);
  const total = Buffer.byteLength(Array.from({ length: 30000 }, (_, i) => `${i + 1}\n`).join(""));
  const id = /^job ([0-9a-f]{12})/.exec(t)![1]!;
  expect(t).toContain(`[... output truncated: ${total} bytes in all`);
  expect(t).toContain(`node_job(node="n1", job_id="${id}", stream="stdout", offset, length) returns any byte range of it`);
  expect(t.length).toBeLessThan(13_000);
  expect(t).toMatch(/\n29999\n30000$/);
  const page = await call("node_job", { node: "n1", job_id: id, stream: "stdout", offset: 0, length: 10 });
  expect(textOf(page)).toBe(`1\n2\n3\n4\n5\n\n[stdout bytes 0-10 of ${total}; next: offset=10]`);
});

test("files: write then read back (ranges, size, next offset); binary said, not shown; clear errors", async () => {
  const w = await call("node_write_file", { node: "n1", path: "notes.txt", content: "héllo\nworld\n" });
  expect(textOf(w)).toBe(`OK wrote 13 bytes to ${join(n1.e.home, "notes.txt")} on 'n1' (atomically: a part file, checked and renamed)`);
  expect(readFileSync(join(n1.e.home, "notes.txt"), "utf8")).toBe("héllo\nworld\n");
  expect(textOf(await call("node_read_file", { node: "n1", path: "notes.txt" }))).toBe("notes.txt on 'n1': bytes 0-13 of 13 (end of file)\nhéllo\nworld\n");
  // a range cutting the two-byte é at its start is still text
  expect(textOf(await call("node_read_file", { node: "n1", path: "notes.txt", offset: 2, length: 5 }))).toBe("notes.txt on 'n1': bytes 2-7 of 13 (6 more bytes; next: offset=7)\nllo\n");
  writeFileSync(join(n1.e.home, "blob.bin"), Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 1, 2, 0xff]));
  const bin = await call("node_read_file", { node: "n1", path: "blob.bin" });
  expect(bin.isError).toBeUndefined();
  expect(textOf(bin)).toMatch(/^blob\.bin on 'n1' is binary \(8 bytes; bytes 0-8 start with: 7f 45 4c 46 00 01 02 ff\); not shown\./);
  const nf = await call("node_read_file", { node: "n1", path: "nope.txt" });
  expect(nf.isError).toBe(true);
  expect(textOf(nf)).toMatch(/^ERR not_found: no such file or directory: .*nope\.txt \(on 'n1'\)$/);
  const nd = await call("node_write_file", { node: "n1", path: "no/such/dir/x.txt", content: "x" });
  expect(textOf(nd)).toMatch(/^ERR not_found: no such directory: .*no\/such\/dir/);
});

test("an unknown node: a clear error naming the nodes there are", async () => {
  for (const [tool, args] of [
    ["node_sh", { command: "true" }],
    ["node_read_file", { path: "x" }],
    ["node_write_file", { path: "x", content: "" }],
    ["node_job", { job_id: "000000000000" }],
  ] as const) {
    const r = await call(tool, { node: "nope", ...args });
    expect(r.isError).toBe(true);
    expect(textOf(r)).toBe("ERR no_node: no node 'nope' -- nodes: n1");
  }
});

test("a node SIGKILLed mid-command: the answer says the link was lost, with the job id and the output before", async () => {
  const nk = await joinNode(hub, "nk");
  try {
    const r = await call("node_sh", { node: "nk", command: "echo first; while :; do echo tick; sleep 0.1; done", deadline: 0.5 });
    const id = /^job ([0-9a-f]{12}) on 'nk' still running/.exec(textOf(r))![1]!;
    await nk.kill("SIGKILL");
    const w = await call("node_job", { node: "nk", job_id: id });
    expect(w.isError).toBe(true);
    expect(textOf(w)).toMatch(new RegExp(`^lost the link to node 'nk' during job ${id}: if the node is still up the command runs on there;.*Output before the loss:\\nfirst\\ntick\\n`, "s"));
    const after = await call("node_sh", { node: "nk", command: "true" });
    expect(textOf(after)).toMatch(/^ERR node_offline: node 'nk' is offline \(since /);
  } finally {
    await nk[Symbol.asyncDispose]();
  }
}, 60_000);
