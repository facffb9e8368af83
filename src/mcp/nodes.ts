/**
 * The node tools of `pysh mcp` (a hub's fleet): list nodes, a shell command on a node with the
 * `run` tool's soft deadline, its job (wait / status / kill / page its output), read and write a
 * file. Each command streams into a record here (output keeps arriving after the answer), so a
 * command past the deadline is answered with its job id and output so far and runs on; nothing is
 * killed by a deadline or by the MCP client's own timeout. Built on the library (src/client/).
 */
import { connect, NodeCommandLost, type PythondClient, type ShExit } from "../client/lib.ts";
import { PythondError } from "../protocol/errors.ts";
import { errReply, okReply } from "../protocol/replies.ts";
import { OutputBuffer, within } from "./cells.ts";
import { byteRange, LIMITS, shapeOutput } from "./shape.ts";
import type { Progress, ToolResult } from "./tools.ts";

const text = (t: string, isError = false): ToolResult => ({ content: [{ type: "text", text: t }], ...(isError ? { isError } : {}) });
const KEEP_COMMANDS = 200;
const PROGRESS_EVERY_MS = 1000;
/** What node_read_file returns at most in one answer. */
export const READ_DEFAULT = 16_000;
export const READ_MAX = 256_000;

/** One stream of a command as text (decoded as it arrives), with its byte count and whether it was text at all. */
class Stream {
  readonly buffer = new OutputBuffer();
  private readonly dec = new TextDecoder();
  bytes = 0;
  binary = false;

  add(b: Uint8Array): void {
    this.bytes += b.length;
    if (!this.binary && b.includes(0)) this.binary = true;
    this.buffer.append(this.dec.decode(b, { stream: true }));
  }
}

type End = { kind: "exit"; exit: ShExit } | { kind: "error"; error: PythondError };

class CommandRecord {
  id?: string;
  readonly out = new Stream();
  readonly err = new Stream();
  readonly started = Date.now();
  done!: Promise<End>;
  end?: End;

  constructor(
    readonly node: string,
    readonly command: string,
  ) {}
}

function secs(since: number): number {
  return Math.round((Date.now() - since) / 100) / 10;
}

function how(e: ShExit): string {
  if (e.timedOut) return `timed out (exit 124: SIGTERM to its process group, SIGKILL 3 s later)`;
  if (e.signal) return `killed by ${e.signal} (exit ${e.exitCode})`;
  return `exited ${e.exitCode}`;
}

export class NodeTools {
  private control?: PythondClient;
  private records = new Map<string, CommandRecord>();
  private order: CommandRecord[] = [];

  constructor(private readonly open: () => Promise<PythondClient> = () => connect()) {}

  private async client(): Promise<PythondClient> {
    if (!this.control || this.control.connection.closed) this.control = await this.open();
    return this.control;
  }

  async listNodes(): Promise<ToolResult> {
    const nodes = await (await this.client()).nodes();
    if (!nodes.length) return text("(no nodes) -- this daemon is not a hub, or no node has joined it (pyctl join-token)");
    return text(
      nodes
        .map((n) => {
          const labels = Object.entries(n.labels).map(([k, v]) => `${k}=${v}`).join(",");
          const where = n.hostname ? ` host=${n.hostname} ${n.os}/${n.arch}` : "";
          return `${n.id}: ${n.state === "online" ? "online" : `offline since ${n.since}`}${where}${labels ? ` labels=${labels}` : ""}${n.sessions !== null ? ` sessions=${n.sessions}` : ""}`;
        })
        .join("\n") + "\n(sessions on a node are named node/session: new_session(name=\"n1/work\"), run(session=\"n1/work\", …))",
    );
  }

  async sh(a: { node: string; command: string; timeout?: number; cwd?: string; deadline: number }, progress: Progress, signal?: AbortSignal): Promise<ToolResult> {
    const c = await this.client();
    const rec = new CommandRecord(a.node, a.command);
    let started!: () => void;
    const startedP = new Promise<void>((r) => (started = r));
    const stream = c.shStream(a.node, a.command, {
      timeoutMs: a.timeout === undefined ? undefined : a.timeout * 1000,
      cwd: a.cwd,
      onStart: (id) => {
        rec.id = id;
        this.remember(rec);
        started();
      },
    });
    rec.done = (async (): Promise<End> => {
      try {
        for await (const { fd, data } of stream) (fd === 1 ? rec.out : rec.err).add(data);
        return { kind: "exit", exit: await stream.result };
      } catch (e) {
        return { kind: "error", error: PythondError.from(e) };
      }
    })().then((end) => (rec.end = end));
    // a failure before the start (no such node, offline) is the answer
    const t0 = Date.now();
    await within(Promise.race([startedP, rec.done]), a.deadline * 1000, signal);
    if (rec.end?.kind === "error" && !rec.id) throw rec.end.error;
    if (!rec.id) {
      stream.cancel();
      return text(`node '${a.node}' did not start the command within ${a.deadline} s (its link may be stalled: list_nodes); try again later`, true);
    }
    return this.report(rec, a.deadline, progress, signal, Date.now() - t0);
  }

  async job(
    a: { node: string; job_id: string; action?: "wait" | "status" | "kill"; deadline: number; stream?: "stdout" | "stderr"; offset?: number; length?: number },
    progress: Progress,
    signal?: AbortSignal,
  ): Promise<ToolResult> {
    const rec = this.records.get(`${a.node}/${a.job_id}`);
    if (a.offset !== undefined || a.length !== undefined || a.stream !== undefined) return this.page(a, rec);
    const c = await this.client();
    const action = a.action ?? "wait";
    if (action === "kill") {
      const r = await c.job(a.node, a.job_id, { kill: true });
      if (rec) await within(rec.done, 5000);
      return this.answer(`job ${a.job_id} on '${a.node}' ended by the kill: ${how(r)}`, rec ?? { out: r.stdoutText, err: r.stderrText, outBytes: r.stdoutBytes, errBytes: r.stderrBytes }, a, r.exitCode !== 0);
    }
    if (rec && action === "wait") return this.report(rec, a.deadline, progress, signal);
    if (rec) return this.stillOrDone(rec, a.deadline, false);
    // A job this server did not start (or forgot): the node's own record.
    if (action === "wait") {
      try {
        const r = await c.job(a.node, a.job_id, { wait: true, timeoutMs: a.deadline * 1000 });
        return this.answer(`job ${a.job_id} on '${a.node}' ${how(r)} (${(r.durationMs / 1000).toFixed(1)} s)`, { out: r.stdoutText, err: r.stderrText, outBytes: r.stdoutBytes, errBytes: r.stderrBytes }, a, r.exitCode !== 0);
      } catch (e) {
        if (!(e instanceof PythondError && e.code === "timeout")) throw e;
      }
    }
    const j = await c.job(a.node, a.job_id);
    const state = j.exit ? how(j.exit) : `still running after ${(j.durationMs / 1000).toFixed(1)} s (pid ${j.pid}); nothing was stopped`;
    const dec = new TextDecoder();
    return this.answer(`job ${j.id} on '${a.node}' ${state}: ${j.command}${j.exit ? "" : `\n${this.hint(a.node, j.id)}`}`, { out: dec.decode(j.stdout), err: dec.decode(j.stderr), outBytes: j.stdoutBytes, errBytes: j.stderrBytes }, a, !!j.exit && j.exit.exitCode !== 0);
  }

  async readFile(a: { node: string; path: string; offset?: number; length?: number }): Promise<ToolResult> {
    const length = Math.min(a.length ?? READ_DEFAULT, READ_MAX);
    const r = await (await this.client()).readFile(a.node, a.path, { offset: a.offset ?? 0, length });
    const end = r.offset + r.data.length;
    const where = `${a.path} on '${a.node}'`;
    const shown = asText(r.data, r.offset > 0, !r.eof);
    if (shown === null) {
      const hex = [...r.data.subarray(0, 16)].map((b) => b.toString(16).padStart(2, "0")).join(" ");
      return text(
        `${where} is binary (${r.size} bytes; bytes ${r.offset}-${end} start with: ${hex}); not shown. ` +
          `Copy it to a machine that can use it (pysh get ${a.node} ${a.path} <local>), or look at it with node_sh (e.g. file, xxd | head).`,
      );
    }
    const more = r.eof ? "end of file" : `${r.size - end} more bytes; next: offset=${end}`;
    return text(`${where}: bytes ${r.offset}-${end} of ${r.size} (${more})\n${shown}`);
  }

  async writeFile(a: { node: string; path: string; content: string }): Promise<ToolResult> {
    const s = await (await this.client()).writeFile(a.node, a.path, a.content);
    return text(okReply(`wrote ${s.bytes} bytes to ${s.target} on '${a.node}' (atomically: a part file, checked and renamed)`));
  }

  // ---- answers ----

  private hint(node: string, id: string): string {
    return `Call node_job(node="${node}", job_id="${id}") to wait for it, node_job(…, action="status") for its output so far, node_job(…, action="kill") to end it.`;
  }

  private async report(rec: CommandRecord, deadlineS: number, progress: Progress, signal?: AbortSignal, spentMs = 0): Promise<ToolResult> {
    const timer = progress ? setInterval(() => progress(secs(rec.started), lastLine(rec.out.buffer.latest || rec.err.buffer.latest)), PROGRESS_EVERY_MS) : undefined;
    try {
      await within(rec.done, Math.max(0, deadlineS * 1000 - spentMs), signal);
    } finally {
      if (timer) clearInterval(timer);
    }
    return this.stillOrDone(rec, deadlineS, true);
  }

  private stillOrDone(rec: CommandRecord, deadlineS: number, waited: boolean): ToolResult {
    const id = rec.id ?? "?";
    const end = rec.end;
    if (!end) {
      const head = waited
        ? `job ${id} on '${rec.node}' still running after ${deadlineS} s; nothing was stopped. ${this.hint(rec.node, id)} Output so far:`
        : `job ${id} on '${rec.node}' running for ${secs(rec.started)} s. ${this.hint(rec.node, id)} Output so far:`;
      return this.answer(head, rec, { node: rec.node, job_id: id }, false);
    }
    if (end.kind === "error") {
      const lost = end.error instanceof NodeCommandLost;
      const head = lost
        ? `lost the link to node '${rec.node}' during job ${id}: if the node is still up the command runs on there; node_job(node="${rec.node}", job_id="${id}") once it is back online (list_nodes). Output before the loss:`
        : errReply(end.error, true);
      return this.answer(head, rec, { node: rec.node, job_id: id }, true);
    }
    return this.answer(`job ${id} on '${rec.node}' ${how(end.exit)} in ${(end.exit.durationMs / 1000).toFixed(1)} s`, rec, { node: rec.node, job_id: id }, end.exit.exitCode !== 0);
  }

  /** Head line, then stdout and stderr (each shaped to fit, with how to page the rest). */
  private answer(
    head: string,
    o: CommandRecord | { out: string; err: string; outBytes: number; errBytes: number },
    ref: { node: string; job_id: string },
    isError: boolean,
  ): ToolResult {
    const s =
      o instanceof CommandRecord
        ? { out: o.out.buffer.text(), err: o.err.buffer.text(), outBytes: o.out.bytes, errBytes: o.err.bytes, binary: o.out.binary || o.err.binary }
        : { ...o, binary: o.out.includes("\0") || o.err.includes("\0") };
    const both = s.out !== "" && s.err !== "";
    const pager = (stream: string) => `node_job(node="${ref.node}", job_id="${ref.job_id}", stream="${stream}", offset, length) returns any byte range of it`;
    const parts = [head];
    if (!s.out && !s.err) parts.push("(no output)");
    if (s.out) parts.push(`${both ? "stdout:\n" : ""}${shapeOutput(s.out, { pager: pager("stdout"), bytes: s.outBytes }, both ? Math.floor((LIMITS.max * 2) / 3) : LIMITS.max)}`);
    if (s.err) parts.push(`stderr:\n${shapeOutput(s.err, { pager: pager("stderr"), bytes: s.errBytes }, both ? Math.floor(LIMITS.max / 3) : LIMITS.max)}`);
    if (s.binary) parts.push("[the output is not text (it has NUL bytes): shown decoded as UTF-8; copy bytes with a file instead]");
    return text(parts.join("\n").replace(/\n+$/, ""), isError);
  }

  /** A byte range of a command's stdout or stderr: this server's record, else what the node kept. */
  private async page(a: { node: string; job_id: string; stream?: "stdout" | "stderr"; offset?: number; length?: number }, rec?: CommandRecord): Promise<ToolResult> {
    const which = a.stream ?? "stdout";
    let full: string;
    let note = "";
    if (rec) full = (which === "stdout" ? rec.out : rec.err).buffer.text();
    else {
      const j = await (await this.client()).job(a.node, a.job_id);
      full = new TextDecoder().decode(which === "stdout" ? j.stdout : j.stderr);
      const total = which === "stdout" ? j.stdoutBytes : j.stderrBytes;
      const kept = which === "stdout" ? j.stdout.length : j.stderr.length;
      if (total > kept) note = ` (the node kept the last ${kept} of ${total} bytes; offsets count from there)`;
    }
    const r = byteRange(full, a.offset ?? 0, Math.min(a.length ?? READ_DEFAULT, READ_MAX));
    const running = rec && !rec.end ? " so far (still running)" : "";
    const more = r.end < r.total ? `; next: offset=${r.end}` : "; end of output";
    return text(`${r.text}\n[${which} bytes ${Math.min(a.offset ?? 0, r.total)}-${r.end} of ${r.total}${running}${more}${note}]`);
  }

  private remember(rec: CommandRecord): void {
    this.records.set(`${rec.node}/${rec.id}`, rec);
    this.order.push(rec);
    for (let i = 0; this.order.length > KEEP_COMMANDS && i < this.order.length; ) {
      const r = this.order[i]!;
      if (!r.end) {
        i++;
        continue;
      }
      this.order.splice(i, 1);
      this.records.delete(`${r.node}/${r.id}`);
    }
  }
}

/**
 * The bytes as text, or null when they are not text: a NUL byte, or bytes that are not UTF-8
 * (a range may cut a character at either end: up to 3 bytes there are forgiven).
 */
export function asText(b: Uint8Array, cutStart: boolean, cutEnd: boolean): string | null {
  if (b.includes(0)) return null;
  let s = 0;
  let e = b.length;
  if (cutStart) while (s < Math.min(3, b.length) && (b[s]! & 0xc0) === 0x80) s++;
  if (cutEnd) {
    // drop a trailing incomplete sequence: its lead byte within the last 3, without all its continuations
    for (let k = 1; k <= 3 && e - k >= s; k++) {
      const c = b[e - k]!;
      if ((c & 0xc0) === 0x80) continue;
      const need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
      if (need > k) e -= k;
      break;
    }
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(b.subarray(s, e));
  } catch {
    return null;
  }
}

function lastLine(output: string): string {
  const lines = output.replace(/\r/g, "\n").split("\n").filter((l) => l.trim());
  const l = lines[lines.length - 1] ?? "";
  return l.length > 200 ? l.slice(0, 200) + "…" : l;
}
