/**
 * `shMany`: one command on every node matching a selector, as `pysh sh -l k=v` does it: the hub
 * runs it (src/fleet/io/fanout.ts, at most maxConcurrency nodes at once) and sends everything
 * back on one connection; each node's result is yielded as it ends, offline matching nodes too.
 */
import type { JobResult } from "../fleet/exec/job.ts";
import { FANOUT_OK, parseSelector } from "../fleet/io/fanout.ts";
import { isErrorCode, PythondError } from "../protocol/errors.ts";
import { isError, OK } from "../protocol/replies.ts";
import { ReplyErrorWithCode } from "./replies.ts";
import { shSpec, type Opener, type ShOptions } from "./fleet.ts";
import { exitOf, Kept, ShResult, type NodeShResult } from "./fleet-results.ts";

/** `"role=web,env=prod"`, `{ role: "web" }`, or `"*"` for every node. */
export type Selector = string | Record<string, string>;

export interface ShManyOptions extends Omit<ShOptions, "stdin" | "onStart"> {
  /** Nodes at once (default 256, the hub's). */
  maxConcurrency?: number;
  /** After the first node that fails, start no other and end the running ones. */
  failFast?: boolean;
}

function selectorArgs(sel: Selector): string[] {
  if (sel === "*") return ["--all"];
  const text = typeof sel === "string" ? sel : Object.entries(sel).map(([k, v]) => `${k}=${v}`).join(",");
  const parsed = parseSelector(text); // a usage error here, before anything is sent
  if (Object.keys(parsed).length === 0) throw new PythondError("usage", `empty selector ${JSON.stringify(sel)} (use "*" for every node)`);
  return ["--selector", text];
}

export async function* shMany(open: Opener, selector: Selector, command: string, opts: ShManyOptions = {}): AsyncGenerator<NodeShResult> {
  const args = selectorArgs(selector);
  if (opts.maxConcurrency !== undefined) {
    if (!Number.isInteger(opts.maxConcurrency) || opts.maxConcurrency < 1) throw new PythondError("usage", `maxConcurrency must be a whole number >= 1 (got ${opts.maxConcurrency})`);
    args.push("--max-concurrency", String(opts.maxConcurrency));
  }
  if (opts.failFast) args.push("--fail-fast");
  const spec = shSpec(command, opts);
  const client = await open();
  try {
    client.send(`fanout ${args.join(" ")}\n${JSON.stringify(spec)}`);
    const first = await client.nextText();
    if (first !== FANOUT_OK) throw new ReplyErrorWithCode(first, client.codes);
    const ids: string[] = [];
    const outs = new Map<string, [Kept, Kept]>();
    const reported = new Set<string>();
    for (;;) {
      let m;
      try {
        m = await client.next();
      } catch (e) {
        const left = ids.filter((id) => !reported.has(id));
        throw new PythondError(PythondError.from(e).code, `${PythondError.from(e).message} -- during a fan-out; no answer yet from: ${left.join(", ")} (their commands run on)`);
      }
      if ("binary" in m) {
        const b = m.binary;
        const i = new DataView(b.buffer, b.byteOffset, b.length).getUint32(0);
        const kept = outs.get(ids[i]!);
        kept?.[b[4] === 2 ? 1 : 0].add(b.subarray(5));
        continue;
      }
      const t = m.text;
      if (t === OK || isError(t)) return; // ERR: "some nodes failed", each already reported
      const r = JSON.parse(t) as { t: string; node: string; nodes?: string[]; since?: string; code?: string; message?: string };
      if (r.t === "nodes") {
        for (const id of r.nodes ?? []) {
          ids.push(id);
          outs.set(id, [new Kept(opts.maxOutputBytes), new Kept(opts.maxOutputBytes)]);
        }
        continue;
      }
      reported.add(r.node);
      if (r.t === "exit") {
        const [o, e] = outs.get(r.node)!;
        outs.delete(r.node);
        const res = new ShResult(exitOf(r.node, null, r as unknown as JobResult, o.total, e.total), o.bytes(), e.bytes());
        yield { node: r.node, status: res.ok ? "ok" : "failed", ok: res.ok, result: res };
      } else if (r.t === "offline") {
        yield { node: r.node, status: "offline", ok: false, offlineSince: r.since, error: new PythondError("node_offline", `node '${r.node}' is offline (since ${r.since})`) };
      } else if (r.t === "skipped") {
        yield { node: r.node, status: "skipped", ok: false, error: new PythondError("execution_failed", `not run on '${r.node}': an earlier node failed (failFast)`) };
      } else {
        yield { node: r.node, status: "error", ok: false, error: new PythondError(r.code && isErrorCode(r.code) ? r.code : "io", String(r.message)) };
      }
    }
  } finally {
    client.close(); // a loop left early: the hub lets the commands run on
  }
}
