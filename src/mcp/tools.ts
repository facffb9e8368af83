/**
 * What each tool of `pysh mcp` does, as plain methods returning MCP results (server.ts registers
 * them with their schemas). Built for agents' real failures: a soft deadline instead of a timeout
 * that kills work, output that fits (head + tail, `read_output` for the rest, `\r` collapsed),
 * truthful session state (a dead session says so and that its namespace is gone), interrupts
 * that report what they interrupted, and figures as images with the path of the full file.
 */
import { errReply, okReply } from "../protocol/replies.ts";
import { readFileSync } from "node:fs";
import { PythondError } from "../protocol/errors.ts";
import { connect, type PythondClient, type RunResult } from "../client/lib.ts";
import { CellRuns, within, type CellEnd, type CellRecord } from "./cells.ts";
import { byteRange, extractFigures, shapeOutput, type Figure } from "./shape.ts";
import figuresPy from "./figures.py" with { type: "text" };

type Content = { type: "text"; text: string } | { type: "image"; data: string; mimeType: string };
export interface ToolResult {
  content: Content[];
  isError?: boolean;
  [k: string]: unknown;
}
/** How a tool reports progress while it waits (absent when the client sent no progress token). */
export type Progress = ((elapsedS: number, message: string) => void) | undefined;

export const DEFAULT_DEADLINE_S = Number(process.env.PYTHOND_MCP_DEADLINE || 20);
const PROGRESS_EVERY_MS = 1000;
const INTERRUPT_SETTLE_MS = 2000;

const text = (t: string, isError = false): ToolResult => ({ content: [{ type: "text", text: t }], ...(isError ? { isError } : {}) });

/** A failed call as the agent should read it: the stable code, the message, and what it means. */
export function errorResult(e: unknown, session?: string): ToolResult {
  const err = PythondError.from(e);
  let t = errReply(err, true); // `ERR <code>: <message>`
  if (err.code === "session_dead") {
    t = `session died: ${err.message}\nIts namespace is gone (variables, imports, open files). Start it again with new_session(name="${session}", replace=true).`;
  }
  return text(t, true);
}

function setupCode(session: string): string {
  // Installs src/mcp/figures.py as the module _pythond_mcp (not in the namespace): once per session.
  return [
    "# pysh mcp: figures come back as images (installs an import hook; matplotlib is not imported)",
    "import sys as _pd_s, os as _pd_o",
    'if "_pythond_mcp" not in _pd_s.modules:',
    '    _pd_m = type(_pd_s)("_pythond_mcp")',
    `    exec(compile(${JSON.stringify(figuresPy)}, "<pysh mcp figures>", "exec"), _pd_m.__dict__)`,
    '    _pd_s.modules["_pythond_mcp"] = _pd_m',
    "    del _pd_m",
    `_pd_s.modules["_pythond_mcp"].install(_pd_o.path.join(_pd_o.path.expanduser("~"), ".pythond", "sessions", ${JSON.stringify(session)}, "figures"))`,
    "del _pd_s, _pd_o",
  ].join("\n");
}

export class Tools {
  private control?: PythondClient;
  private runs = new CellRuns(() => this.open());
  /** Sessions (name -> worker pid) where figures.py is installed by this server. */
  private figuresIn = new Map<string, number>();
  /** Figures already sent as images, per cell (a cell reported twice sends each image once). */
  private sent = new Set<string>();

  constructor(private readonly open: () => Promise<PythondClient> = () => connect()) {}

  /** The connection for one-reply commands, opened again if the daemon went away meanwhile. */
  private async client(): Promise<PythondClient> {
    if (!this.control || this.control.connection.closed) this.control = await this.open();
    return this.control;
  }

  async listSessions(): Promise<ToolResult> {
    const ls = await (await this.client()).ls();
    if (!ls.length) return text("(no sessions) -- create one with new_session");
    return text(ls.map((s) => `${s.name}: ${s.state}${s.pid ? ` pid=${s.pid}` : ""}${s.detail ? ` (${s.detail})` : ""}`).join("\n"));
  }

  async newSession(a: { name: string; replace?: boolean; python?: string; cwd?: string }): Promise<ToolResult> {
    const c = await this.client();
    await c.new(a.name, { replace: a.replace, python: a.python, cwd: a.cwd });
    const st = await c.session(a.name).status();
    return text(okReply(`session '${a.name}' created (pid ${st.pid}, Python ${st.python}, cwd ${st.cwd})`));
  }

  async killSession(a: { name: string }): Promise<ToolResult> {
    await (await this.client()).session(a.name).kill();
    this.figuresIn.delete(a.name);
    return text(okReply(`killed session '${a.name}' (its namespace is gone)`));
  }

  async listVariables(a: { session: string }): Promise<ToolResult> {
    const names = await (await this.client()).session(a.session).vars();
    return text(names.length ? names.join("\n") : "(no public names)");
  }

  /**
   * Interrupts, then checks what stopped: a thread in C code (a blocking call, a long numpy
   * operation) notices an interrupt only when it returns to Python, and the agent must not be told
   * it stopped when it did not.
   */
  async interrupt(a: { session: string }): Promise<ToolResult> {
    const s = (await this.client()).session(a.session);
    const before = (await s.status()).running;
    const reply = await s.interrupt();
    if (!before.length) return text(reply);
    let still = before;
    for (const end = Date.now() + INTERRUPT_SETTLE_MS; still.length && Date.now() < end; ) {
      await Bun.sleep(50); // polling the session's own state, bounded
      const now = (await s.status()).running;
      still = before.filter((id) => now.includes(id));
    }
    const stopped = before.filter((id) => !still.includes(id));
    const lines = [reply];
    if (stopped.length) lines.push(`stopped: ${stopped.join(", ")}`);
    if (still.length) {
      lines.push(
        `still running ${INTERRUPT_SETTLE_MS / 1000} s after the interrupt: ${still.join(", ")} (in C code or a blocking call, which notices ` +
          `interrupts only when it returns to Python); interrupt again later, wait for it, or kill_session (the namespace is lost)`,
      );
    }
    return text(lines.join("\n"));
  }

  async run(a: { session: string; code: string; timeout?: number; deadline?: number }, progress: Progress, signal?: AbortSignal): Promise<ToolResult> {
    const c = await this.client();
    const st = await c.session(a.session).status(); // no_session / session_dead before anything runs
    const setup = this.figuresIn.get(a.session) === st.pid ? undefined : setupCode(a.session);
    const rec = await this.runs.start(a.session, a.code, a.timeout, setup);
    if (setup) this.figuresIn.set(a.session, st.pid);
    return this.report(rec, a.deadline ?? DEFAULT_DEADLINE_S, progress, signal);
  }

  /**
   * The record of a cell this server ran, unless its connection broke (the daemon restarted, say):
   * the cell ran on in its session, and the daemon is asked instead.
   */
  private record(session: string, cellId: string | undefined): CellRecord | undefined {
    const rec = cellId ? this.runs.get(session, cellId) : undefined;
    if (rec?.end?.kind === "error" && rec.end.error.code === "daemon_unreachable" && rec.cellId) return undefined;
    return rec;
  }

  async wait(a: { session: string; cell_id: string; deadline?: number }, progress: Progress, signal?: AbortSignal): Promise<ToolResult> {
    const deadline = a.deadline ?? DEFAULT_DEADLINE_S;
    const rec = this.record(a.session, a.cell_id);
    if (rec) return this.report(rec, deadline, progress, signal);
    const broken = this.runs.get(a.session, a.cell_id);
    a = { ...a, cell_id: broken?.cellId ?? a.cell_id };
    // A cell this server did not run (fire, pysh, an earlier server), or one whose connection
    // broke: the daemon's own wait.
    let c: PythondClient;
    try {
      c = await this.open();
    } catch (e) {
      if (broken && e instanceof PythondError && e.code === "daemon_unreachable") return this.report(broken, 0, undefined);
      throw e;
    }
    const since = Date.now();
    let last = "";
    const timer = progress ? setInterval(() => progress(secs(since), lastLine(last)), PROGRESS_EVERY_MS) : undefined;
    try {
      const r = await c.session(a.session).wait(a.cell_id, { timeout: deadline, onOutput: (t) => (last += t) });
      return this.final(a.session, r, r.output, undefined);
    } catch (e) {
      if (e instanceof PythondError && e.code === "timeout") {
        const p = await (await this.client()).session(a.session).poll(a.cell_id);
        return this.stillRunning(a.session, a.cell_id, p.output, deadline);
      }
      throw e;
    } finally {
      if (timer) clearInterval(timer);
      c.close();
    }
  }

  async cellStatus(a: { session: string; cell_id?: string }): Promise<ToolResult> {
    const rec = this.record(a.session, a.cell_id);
    if (rec) {
      const state = !rec.cellId && !rec.end ? "queued (not started)" : !rec.end ? "running" : rec.end.kind === "error" ? "session died" : rec.end.result.ok ? "done" : "error";
      const body = rec.end?.kind === "result" && !rec.end.result.ok ? `${rec.output}\n${rec.end.result.error}` : rec.output;
      return this.withFigures(`cell ${rec.cellId ?? rec.handle}: ${state} (${secs(rec.started)} s)`, a.session, rec.cellId, body, rec.end?.kind === "error" ? rec.end.error : undefined);
    }
    const p = await (await this.client()).session(a.session).poll(a.cell_id);
    if (p.status === "idle") return text(`no cells in '${a.session}' yet`);
    return this.withFigures(`cell ${p.cell_id}: ${p.status}`, a.session, p.cell_id, p.output);
  }

  async readOutput(a: { session: string; cell_id: string; offset?: number; length?: number }): Promise<ToolResult> {
    const rec = this.record(a.session, a.cell_id);
    const full = rec ? rec.output : (await (await this.client()).session(a.session).poll(a.cell_id)).output;
    const r = byteRange(full, a.offset ?? 0, a.length ?? 16_000);
    const more = r.end < r.total ? `; next: offset=${r.end}` : "; end of output";
    return text(`${r.text}\n[bytes ${Math.min(a.offset ?? 0, r.total)}-${r.end} of ${r.total}${rec && !rec.end ? " so far (still running)" : ""}${more}]`);
  }

  /** The answer for a cell: its end if it comes within the deadline, else what it printed so far. */
  private async report(rec: CellRecord, deadlineS: number, progress: Progress, signal?: AbortSignal): Promise<ToolResult> {
    const timer = progress
      ? setInterval(() => progress(secs(rec.started), lastLine(rec.buffer.latest)), PROGRESS_EVERY_MS)
      : undefined;
    let end: CellEnd | null;
    try {
      end = await within(rec.done, deadlineS * 1000, signal);
    } finally {
      if (timer) clearInterval(timer);
    }
    if (!end) {
      if (rec.cellId) return this.stillRunning(rec.session, rec.cellId, rec.output, deadlineS);
      // Not started yet: the session's main thread is busy with an earlier cell.
      const running = await (await this.client()).session(rec.session).status().then((st) => st.running.join(", "), () => "?");
      return text(
        `not started after ${deadlineS} s: queued behind the running cell(s) ${running} of session '${rec.session}'; nothing was stopped. ` +
          `It runs when they end. Call wait(session="${rec.session}", cell_id="${rec.handle}") to wait for it, or interrupt(session="${rec.session}") to stop what runs.`,
      );
    }
    if (end.kind === "error" && end.error.code === "daemon_unreachable" && rec.cellId) {
      const shown = rec.output ? `${shapeOutput(rec.output, { session: rec.session, cellId: rec.cellId })}\n` : "";
      return text(
        `${shown}the connection to the daemon broke while cell ${rec.cellId} ran (${end.error.message.replace(/ -- cell .*$/, "")}); ` +
          `the cell keeps running in session '${rec.session}'. Call wait(session="${rec.session}", cell_id="${rec.cellId}") once the daemon is back.`,
        true,
      );
    }
    if (end.kind === "error") {
      const shown = rec.output ? `${shapeOutput(rec.output, { session: rec.session, cellId: rec.cellId })}\n` : "";
      const r = errorResult(end.error, rec.session);
      (r.content[0] as { text: string }).text = shown + (r.content[0] as { text: string }).text;
      return r;
    }
    return this.final(rec.session, end.result, rec.output, secs(rec.started));
  }

  private async final(session: string, r: RunResult, output: string, took: number | undefined): Promise<ToolResult> {
    const body = r.ok ? output : `${output}${output && !output.endsWith("\n") ? "\n" : ""}${r.error}`;
    const time = took === undefined ? "" : ` in ${took} s`;
    const head = r.ok ? `cell ${r.cellId} done${time}; session '${session}' alive` : `cell ${r.cellId} raised${time}; session '${session}' alive, namespace kept`;
    return this.withFigures(head, session, r.cellId, body, undefined, !r.ok);
  }

  private stillRunning(session: string, cellId: string, output: string, deadlineS: number): Promise<ToolResult> {
    const head =
      `cell ${cellId} still running after ${deadlineS} s; nothing was stopped. Call wait(session="${session}", cell_id="${cellId}") ` +
      `to wait for it, cell_status for its output so far, or interrupt(session="${session}") to stop it. Output so far:`;
    return this.withFigures(head, session, cellId, output);
  }

  /** Text (figures taken out, shaped) with its status line, then each new figure as an image. */
  private async withFigures(head: string, session: string, cellId: string | undefined, output: string, err?: PythondError, isError = false): Promise<ToolResult> {
    const { text: plain, figures } = extractFigures(output);
    let t = `${head}\n${shapeOutput(plain, { session, cellId })}`;
    if (err) t += `\n${(errorResult(err, session).content[0] as { text: string }).text}`;
    const content: Content[] = [{ type: "text", text: t.replace(/\n+$/, "") }];
    for (const f of figures) {
      const key = `${cellId}:${f.path}`;
      if (this.sent.has(key)) continue;
      this.sent.add(key);
      const data = await this.preview(session, f);
      if (data) content.push({ type: "image", data, mimeType: "image/png" });
    }
    return { content, ...(isError || err ? { isError: true } : {}) };
  }

  /** The preview PNG, base64: read here when the daemon is local, else asked from the session. */
  private async preview(session: string, f: Figure): Promise<string | null> {
    try {
      return readFileSync(f.preview).toString("base64");
    } catch {}
    try {
      const s = (await this.client()).session(session);
      const id = await s.fire(`import base64 as _b\nprint(_b.b64encode(open(${JSON.stringify(f.preview)}, "rb").read()).decode())`);
      const r = await s.wait(id);
      return r.ok ? r.output.trim() : null;
    } catch {
      return null;
    }
  }
}

function secs(since: number): number {
  return Math.round((Date.now() - since) / 100) / 10;
}

function lastLine(output: string): string {
  const lines = output.replace(/\r/g, "\n").split("\n").filter((l) => l.trim());
  const l = lines[lines.length - 1] ?? "";
  return l.length > 200 ? l.slice(0, 200) + "…" : l;
}
