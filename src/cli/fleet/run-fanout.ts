/**
 * pysh run (-l k=v[,k=v] | --all) [--session NAME] [--max-concurrency N] [--json] <code|@file|->
 *
 * The cell runs in session NAME (default `main`, created on first use) of every matching online
 * node at once, at most N at a time (default 32): each through the hub's ordinary node-session
 * path (`run node/NAME`), so output streams with credits as any `pysh run` does. Output lines are
 * prefixed `node: ` (coloured on a terminal); --json gives one object per node
 * ({id, status, ok, output, error}); offline matching nodes are reported. Exit 0 only if the cell
 * succeeded on every matching node.
 */
import { Client } from "../../client/connect.ts";
import { ReplyError, request, runStreaming } from "../../client/api.ts";
import { matches, parseSelector } from "../../fleet/io/fanout.ts";
import { PythondError } from "../../protocol/errors.ts";
import { parseError } from "../../protocol/replies.ts";
import { resolveCode } from "../code-arg.ts";
import { parseArgs } from "../spec.ts";
import { errLine, line, stderr, stdout } from "../out.ts";

const USAGE = "usage: pysh run (-l k=v[,k=v] | --all) [--session NAME] [--max-concurrency N] [--json] <code|@file|->";
const CUT = 64 << 10;

const RUN_FANOUT = {
  name: "run",
  summary: "a cell on every matching node",
  examples: [],
  options: { session: { value: "NAME", help: "" }, "max-concurrency": { value: "N", help: "" }, timeout: { value: "S", help: "" }, json: { help: "" } },
  max: 0,
  code: true,
};

interface NodeRow {
  id: string;
  state: string;
  labels: Record<string, string>;
}

export async function runFanoutMain(argv: string[]): Promise<number> {
  let sel: Record<string, string> | undefined;
  let all = false;
  let rest = argv;
  if (rest[0] === "-l" || rest[0] === "--selector") {
    if (!rest[1]) return usage();
    sel = parseSelector(rest[1]);
    rest = rest.slice(2);
  } else if (rest[0]?.startsWith("--selector=")) {
    sel = parseSelector(rest[0].slice(11));
    rest = rest.slice(1);
  } else if (rest[0] === "--all") {
    all = true;
    rest = rest.slice(1);
  }
  // The options that follow the selector, then the code (pysh.ts checked the whole line against
  // run's table entry already).
  const a = parseArgs("pysh", RUN_FANOUT, rest);
  const session = typeof a.opts.session === "string" ? a.opts.session : "main";
  const max = a.opts["max-concurrency"] === undefined ? 32 : Number(a.opts["max-concurrency"]);
  if (!Number.isInteger(max) || max < 1) return usage("--max-concurrency takes a whole number >= 1");
  const json = a.opts.json === true;
  const code = await resolveCode(a.code);
  const tty = process.stdout.isTTY === true && !json;
  let nodes: NodeRow[];
  {
    const c = await Client.open();
    try {
      nodes = JSON.parse(await request(c, "nodes", ["--json"])) as NodeRow[];
    } catch (e) {
      errLine(e instanceof ReplyError ? e.reply : PythondError.from(e).toFrame());
      return 255;
    } finally {
      c.close();
    }
  }
  const chosen = nodes.filter((n) => all || matches(n.labels ?? {}, sel!));
  if (!chosen.length) {
    const what = all ? "--all" : `-l ${Object.entries(sel!).map(([k, v]) => `${k}=${v}`).join(",")}`;
    errLine(new PythondError("no_node", `no node matches ${what} (see: pysh nodes)`).toFrame());
    return 255;
  }
  let bad = 0;
  const enc = new TextEncoder();
  const one = async (n: NodeRow) => {
    if (n.state !== "online") {
      bad++;
      if (json) line(JSON.stringify({ id: n.id, status: "offline", ok: false, output: "", error: `node '${n.id}' is offline` }));
      else stderr(`${n.id}: offline\n`);
      return;
    }
    const prefix = enc.encode(tty ? `\x1b[36m${n.id}:\x1b[0m ` : `${n.id}: `);
    let partial: Uint8Array[] = [];
    const kept: Uint8Array[] = [];
    let keptBytes = 0;
    let total = 0;
    const onOutput = (chunk: Uint8Array) => {
      total += chunk.length;
      if (json) {
        if (keptBytes < CUT) {
          const take = chunk.slice(0, CUT - keptBytes);
          kept.push(take);
          keptBytes += take.length;
        }
        return;
      }
      let start = 0;
      for (let j = 0; j < chunk.length; j++) {
        if (chunk[j] !== 10) continue;
        stdout(Buffer.concat([prefix, ...partial, chunk.subarray(start, j + 1)]));
        partial = [];
        start = j + 1;
      }
      if (start < chunk.length) partial.push(chunk.slice(start));
    };
    const c = await Client.open();
    try {
      const name = `${n.id}/${session}`;
      let r = await runStreaming(c, name, code, {}, onOutput);
      if (!r.ok && parseError(r.final, false).message.includes("no session")) {
        await request(c, "new", [name]); // created on first use
        r = await runStreaming(c, name, code, {}, onOutput);
      }
      if (!json && partial.length) stdout(Buffer.concat([prefix, ...partial, enc.encode("\n")]));
      if (!r.ok) bad++;
      const error = r.ok ? undefined : parseError(r.final, false).message;
      if (json) line(JSON.stringify({ id: n.id, status: r.ok ? "ok" : "failed", ok: r.ok, output: Buffer.concat(kept).toString(), ...(total > CUT ? { output_cut: true, output_bytes: total } : {}), ...(error ? { error } : {}) }));
      else if (error) stderr(`${n.id}: ${error.replace(/\n/g, `\n${n.id}: `)}\n`);
    } catch (e) {
      bad++;
      const msg = e instanceof ReplyError ? e.message : PythondError.from(e).message;
      if (json) line(JSON.stringify({ id: n.id, status: "error", ok: false, output: "", error: msg }));
      else stderr(`${n.id}: ${new PythondError("io", msg).toFrame()}\n`);
    } finally {
      c.close();
    }
  };
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(max, chosen.length) }, async () => {
      while (next < chosen.length) await one(chosen[next++]!);
    }),
  );
  if (bad) stderr(`pysh: ${bad} of ${chosen.length} node${chosen.length === 1 ? "" : "s"} did not succeed\n`);
  return bad ? 1 : 0;
}

function usage(why?: string): number {
  errLine(new PythondError("usage", `${USAGE}${why ? `\n(${why})` : ""}`).toFrame());
  return 255;
}
