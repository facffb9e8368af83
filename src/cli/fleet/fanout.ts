/**
 * pysh sh --all | -l k=v[,k=v] [--max-concurrency N] [--fail-fast] [--json] [--] <command…>
 *
 * The hub runs the command on every matching node (src/fleet/io/fanout.ts); here its records
 * become output: each line prefixed `node: ` (in a stable colour per node on a terminal), or with
 * --json one object per node as it ends (id, exit, signal, timed_out, duration_ms, stdout, stderr;
 * outputs past 64 KiB cut, the total size stated). Offline and failing nodes are reported, and a
 * summary table ends the run on a terminal. Exit 0 only if every matching node exited 0.
 */
import { Client } from "../../client/connect.ts";
import { ReplyError } from "../../client/api.ts";
import type { JobResult } from "../../fleet/exec/job.ts";
import { FANOUT_OK } from "../../fleet/io/fanout.ts";
import { PythondError } from "../../protocol/errors.ts";
import { isError, OK } from "../../protocol/replies.ts";
import type { IoSpec } from "../../protocol/fleet-io.ts";
import { errLine, line, stderr, stdout } from "../out.ts";
import { describeResult } from "./sh.ts";

const CUT = 64 << 10;
const COLOURS = [31, 32, 33, 34, 35, 36, 91, 92, 93, 94, 95, 96];

/** A stable colour per node name (the same node, the same colour, run after run). */
function colour(id: string): number {
  let h = 0;
  for (let i = 0; i < id.length; i++) h = (h * 31 + id.charCodeAt(i)) >>> 0;
  return COLOURS[h % COLOURS.length]!;
}

interface NodeOut {
  id: string;
  partial: [Uint8Array[], Uint8Array[]];
  kept: [Uint8Array[], Uint8Array[]];
  keptBytes: [number, number];
  total: [number, number];
  result?: JobResult;
  status?: string;
}

export async function fanoutMain(spec: Extract<IoSpec, { kind: "sh" }>, opts: Record<string, string | true>): Promise<number> {
  const json = opts.json === true;
  const tty = process.stdout.isTTY === true && !json;
  const args: string[] = [];
  if (opts.all) args.push("--all");
  if (typeof opts.selector === "string") args.push("--selector", opts.selector);
  if (typeof opts["max-concurrency"] === "string") args.push("--max-concurrency", opts["max-concurrency"]);
  if (opts["fail-fast"]) args.push("--fail-fast");
  let client: Client | undefined;
  const nodes: NodeOut[] = [];
  const byId = new Map<string, number>();
  const enc = new TextEncoder();
  const prefixes = new Map<string, Uint8Array>();
  const prefix = (n: NodeOut) => {
    let p = prefixes.get(n.id);
    if (!p) prefixes.set(n.id, (p = enc.encode(tty ? `\x1b[${colour(n.id)}m${n.id}:\x1b[0m ` : `${n.id}: `)));
    return p;
  };
  const emit = (n: NodeOut, i: number, fd: 1 | 2, chunk: Uint8Array, flush = false) => {
    const k = (fd - 1) as 0 | 1;
    const write = fd === 1 ? stdout : stderr;
    let start = 0;
    for (let j = 0; j < chunk.length; j++) {
      if (chunk[j] !== 10) continue;
      write(Buffer.concat([prefix(n), ...n.partial[k], chunk.subarray(start, j + 1)]));
      n.partial[k] = [];
      start = j + 1;
    }
    if (start < chunk.length) n.partial[k].push(chunk.slice(start));
    if (flush && n.partial[k].length) {
      write(Buffer.concat([prefix(n), ...n.partial[k], enc.encode("\n")]));
      n.partial[k] = [];
    }
  };
  const keep = (n: NodeOut, fd: 1 | 2, chunk: Uint8Array) => {
    const k = (fd - 1) as 0 | 1;
    n.total[k] += chunk.length;
    if (n.keptBytes[k] < CUT) {
      const take = chunk.subarray(0, CUT - n.keptBytes[k]);
      n.kept[k].push(take.slice());
      n.keptBytes[k] += take.length;
    }
  };
  const report = (n: NodeOut, extra: Record<string, unknown> = {}) => {
    const text = (k: 0 | 1) => Buffer.concat(n.kept[k]).toString("utf8");
    const r = n.result;
    line(
      JSON.stringify({
        id: n.id,
        status: n.status,
        exit: r?.exit ?? null,
        signal: r?.signal ?? null,
        timed_out: r?.timedOut ?? false,
        duration_ms: r?.durationMs ?? null,
        stdout: text(0),
        stderr: text(1),
        ...(n.total[0] > CUT ? { stdout_cut: true, stdout_bytes: n.total[0] } : {}),
        ...(n.total[1] > CUT ? { stderr_cut: true, stderr_bytes: n.total[1] } : {}),
        ...extra,
      }),
    );
  };
  try {
    client = await Client.open();
    client.send(`fanout ${args.join(" ")}\n${JSON.stringify(spec)}`);
    const first = await client.nextText();
    if (first !== FANOUT_OK) throw new ReplyError(first, client.codes);
    let final = "";
    for (;;) {
      const m = await client.next();
      if ("binary" in m) {
        const b = m.binary;
        const i = new DataView(b.buffer, b.byteOffset, b.length).getUint32(0);
        const fd = b[4] === 2 ? 2 : 1;
        const n = nodes[i]!;
        if (json) keep(n, fd, b.subarray(5));
        else emit(n, i, fd, b.subarray(5));
        continue;
      }
      const t = m.text;
      if (t === OK || isError(t)) {
        final = t;
        break;
      }
      const r = JSON.parse(t) as { t: string; node: string; nodes?: string[]; [k: string]: unknown };
      if (r.t === "nodes") {
        for (const id of r.nodes!) {
          byId.set(id, nodes.length);
          nodes.push({ id, partial: [[], []], kept: [[], []], keptBytes: [0, 0], total: [0, 0] });
        }
        continue;
      }
      const i = byId.get(r.node)!;
      const n = nodes[i]!;
      if (r.t === "exit") {
        const { t: _t, node: _n, ...result } = r;
        n.result = result as unknown as JobResult;
        n.status = n.result.exit === 0 ? "ok" : "failed";
        if (!json) {
          emit(n, i, 1, new Uint8Array(), true);
          emit(n, i, 2, new Uint8Array(), true);
        }
      } else n.status = r.t === "error" ? `error: ${String(r.message)}` : r.t; // offline, skipped
      if (json) report(n, r.t === "offline" ? { since: r.since } : {});
      else if (r.t !== "exit") stderr(`${n.id}: ${r.t === "offline" ? `offline (since ${String(r.since)})` : n.status}\n`);
    }
    if (tty || (!json && process.stderr.isTTY)) {
      const rows = nodes.map((n) => `  ${n.id.padEnd(24)} ${n.result ? describeResult(n.result) : n.status ?? "?"}${n.result ? `  ${(n.result.durationMs / 1000).toFixed(2)}s` : ""}`);
      stderr(`\n${rows.join("\n")}\n`);
    }
    const bad = nodes.filter((n) => n.status !== "ok").length;
    if (bad) stderr(`pysh: ${bad} of ${nodes.length} node${nodes.length === 1 ? "" : "s"} did not succeed\n`);
    return final === OK && bad === 0 ? 0 : 1;
  } catch (e) {
    errLine(e instanceof ReplyError ? e.reply : PythondError.from(e).toFrame());
    return 255;
  } finally {
    client?.close();
  }
}
