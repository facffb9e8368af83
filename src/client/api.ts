/**
 * The request API used by pysh and by programs: one-reply commands, and streaming `run`. Replies
 * are read with src/protocol/replies.ts; an `ERR` reply keeps its code (pythond.1+codes) and is
 * shown to people without it, exactly as the daemon's message reads.
 */
import { PythondError } from "../protocol/errors.ts";
import { buildFrame } from "../protocol/frame.ts";
import { cellIdOf, isError, parseError } from "../protocol/replies.ts";
import type { Client } from "./connect.ts";

/** Sends a command and returns its one text reply; `ERR …` replies are thrown. */
export async function request(client: Client, cmd: string, args: string[] = [], body?: string): Promise<string> {
  client.send(buildFrame(cmd, args, body));
  const reply = await client.nextText();
  if (isError(reply)) throw new ReplyError(reply, client.codes);
  return reply;
}

/** An `ERR …` reply from the daemon: its code, and `reply`, the frame to print (`ERR <message>`). */
export class ReplyError extends PythondError {
  readonly reply: string;
  constructor(text: string, codes = false) {
    const e = parseError(text, codes);
    super(e.code, e.message);
    this.reply = e.toFrame(false);
  }
}

export interface RunResult {
  cellId?: string;
  ok: boolean;
  /** The final frame as people see it: `OK`, or `ERR …` (without the code). */
  final: string;
  /** The failure, with its code. */
  error?: PythondError;
}

/** Runs a cell, streaming output chunks to onOutput as they arrive (subprotocol pythond.1). */
export async function runStreaming(
  client: Client,
  name: string,
  code: string,
  opts: { timeout?: number; cmd?: string; args?: string[]; onCell?: (id: string) => void },
  onOutput: (chunk: Uint8Array) => void,
): Promise<RunResult> {
  const args = opts.args ?? [name, ...(opts.timeout ? ["--timeout", String(opts.timeout)] : [])];
  client.send(buildFrame(opts.cmd ?? "run", args, code));
  let cellId: string | undefined;
  for (;;) {
    let m;
    try {
      m = await client.next();
    } catch (e) {
      // The daemon went away mid-cell: the cell runs on in its worker; say how to get the result.
      if (cellId && e instanceof PythondError) {
        throw new PythondError(e.code, `${e.message} -- cell ${cellId} keeps running; get its result with: pysh wait ${name} ${cellId}`);
      }
      throw e;
    }
    if ("binary" in m) {
      onOutput(m.binary);
      continue;
    }
    const started = cellIdOf(m.text);
    if (started !== undefined) {
      cellId = started;
      opts.onCell?.(cellId);
      continue;
    }
    if (!isError(m.text)) return { cellId, ok: true, final: m.text };
    const error = parseError(m.text, client.codes);
    return { cellId, ok: false, final: error.toFrame(false), error };
  }
}
