/**
 * The request API used by pysh and by programs: one-reply commands, and streaming `run`.
 */
import { PythondError } from "../protocol/errors.ts";
import { buildFrame } from "../protocol/frame.ts";
import type { Client } from "./connect.ts";

/** Sends a command and returns its one text reply; `ERR …` replies are thrown. */
export async function request(client: Client, cmd: string, args: string[] = [], body?: string): Promise<string> {
  client.send(buildFrame(cmd, args, body));
  const reply = await client.nextText();
  if (reply.startsWith("ERR ")) throw new ReplyError(reply);
  return reply;
}

/** An `ERR …` reply from the daemon, kept verbatim for printing. */
export class ReplyError extends PythondError {
  constructor(readonly reply: string) {
    super("execution_failed", reply.slice(4));
  }
}

export interface RunResult {
  cellId?: string;
  ok: boolean;
  /** The final frame: `OK`, or `ERR …` verbatim. */
  final: string;
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
    if (m.text.startsWith("CELL ")) {
      cellId = m.text.slice(5);
      opts.onCell?.(cellId);
      continue;
    }
    return { cellId, ok: !m.text.startsWith("ERR "), final: m.text };
  }
}
