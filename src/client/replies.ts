/**
 * Reading the daemon's replies as data, for programs (the TypeScript library, `pysh mcp`): which
 * stable error code an `ERR …` reply stands for, and the shapes of the JSON replies.
 *
 * The code is taken from the reply when it carries one (`ERR <code>: message`, a form the wire
 * may use); replies that carry only the message (today's pythond.1 and pythond.0.4 text) are
 * classified by the message, whose wording the README documents and tests pin. Both forms parse.
 */
import { isError } from "../protocol/replies.ts";
import { ERROR_CODES, PythondError, type ErrorCode } from "../protocol/errors.ts";

const BY_MESSAGE: Array<[RegExp, ErrorCode]> = [
  [/^execution failed/, "execution_failed"],
  [/^no session '|^no remote '/, "no_session"],
  [/^session '[^']*' already exists/, "session_exists"],
  [/^session '[^']*' (died|is dead|.*-- start it again)/, "session_dead"],
  [/^auth failed|^no server certificate pinned|^server certificate mismatch/, "auth_failed"],
  [/^invalid session name/, "invalid_name"],
  [/^usage:|^new takes a name only|takes a number of seconds/, "usage"],
  [/^unknown: /, "unknown_command"],
  [/^cell \S+ is still running after --timeout|^timed out/, "timeout"],
  [/^frame too large/, "frame_too_large"],
  [/^no daemon|^daemon closed the connection|^connection refused/, "daemon_unreachable"],
  [/is only accepted on the local socket/, "not_local"],
];

/**
 * The code and message of an `ERR …` reply (text after `ERR `). `codes`: the connection is known
 * to carry codes (pythond.1+codes), so a tag is always one.
 */
export function classifyError(text: string, codes = false): { code: ErrorCode; message: string } {
  const body = isError(text) ? text.slice(4) : text;
  const tagged = /^([a-z_]+): /.exec(body);
  if (tagged && Object.hasOwn(ERROR_CODES, tagged[1]!)) {
    if (codes) return { code: tagged[1] as ErrorCode, message: body.slice(tagged[0].length) };
    // `usage: poll <name>` is a plain message that looks tagged; `usage: usage: poll <name>` is
    // the tagged form of it: the tag is real unless only the untagged reading classifies.
    const rest = body.slice(tagged[0].length);
    const plain = byMessage(body);
    if (plain === "internal" || byMessage(rest) === plain) return { code: tagged[1] as ErrorCode, message: rest };
  }
  if (body.startsWith("{")) {
    try {
      const d = JSON.parse(body) as { output?: string; cell_id?: string };
      if (d.output === "unknown cell") return { code: "unknown_cell", message: `unknown cell ${d.cell_id} (finished cells are kept for an hour at most)` };
    } catch {}
  }
  return { code: byMessage(body), message: body };
}

function byMessage(message: string): ErrorCode {
  for (const [re, code] of BY_MESSAGE) if (re.test(message)) return code;
  return "internal";
}

/** An `ERR …` reply as a PythondError with its stable code (`reply` keeps the frame verbatim). */
export class ReplyErrorWithCode extends PythondError {
  constructor(
    readonly reply: string,
    codes = false,
  ) {
    const { code, message } = classifyError(reply, codes);
    super(code, message);
  }
}

/** A cell's state as `poll` reports it. */
export interface CellState {
  cell_id: string;
  status: "running" | "done" | "error" | "idle";
  output: string;
  error?: boolean;
  /** fork cells: names that did not merge back, exit code, … */
  [extra: string]: unknown;
}

/** `status <name>`. */
export interface SessionStatus {
  state: "running" | "idle";
  running: string[];
  vars: number;
  cells: number;
  pid: number;
  python: string;
  cwd: string;
  uptime: number;
  queued: number;
}

/** One line of `ls`. */
export interface SessionInfo {
  name: string;
  state: "alive" | "starting" | "dead" | "incompatible" | "remote";
  pid?: number;
  /** Why a session is dead or incompatible; the endpoint of a remote proxy. */
  detail?: string;
}

/** Parses the text of `ls` (see src/daemon/dispatch.ts and proxy.ts `lsLine`). */
export function parseLs(text: string): SessionInfo[] {
  const out: SessionInfo[] = [];
  for (const raw of text.split("\n")) {
    const m = /^\s+([a-z0-9_-]+): (.*)$/.exec(raw);
    if (!m) continue;
    const [, name, rest] = m as unknown as [string, string, string];
    let r: RegExpExecArray | null;
    if ((r = /^alive pid=(\d+)/.exec(rest))) out.push({ name, state: "alive", pid: Number(r[1]) });
    else if (rest.startsWith("starting")) out.push({ name, state: "starting" });
    else if ((r = /^incompatible pid=(\d+) \((.*)\)$/.exec(rest))) out.push({ name, state: "incompatible", pid: Number(r[1]), detail: r[2] });
    else if ((r = /^dead \((.*)\)$/.exec(rest))) out.push({ name, state: "dead", detail: r[1] });
    else if ((r = /^-> (.*?) \(remote(.*)\)$/.exec(rest))) out.push({ name, state: "remote", detail: r[1] + (r[2] ?? "") });
  }
  return out;
}
