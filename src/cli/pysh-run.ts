/**
 * `pysh run` and `pysh wait`: stream a cell's output, then exit like `python -c` would.
 *
 *  - Exit status: 0; 1 with the traceback on stderr; `sys.exit(N)` exits N (the worker reports it
 *    as `exit(N)`), `SystemExit('msg')` exits 1; a cell interrupted by our Ctrl-C exits 130.
 *  - Ctrl-C (SIGINT) on `run`: the first interrupts this cell only (`int <name> <cell_id>` on a
 *    second connection: the first one is busy streaming), so the KeyboardInterrupt traceback
 *    arrives as usual; a second within LEAVE_MS leaves at once, printing the cell id and the
 *    commands to wait for it or interrupt it. SIGTERM/SIGHUP/SIGKILL keep their default: pysh
 *    ends, the cell runs on (an agent harness giving up must not cost the work).
 *  - Operator echo (echo.ts) when stderr is a terminal.
 */
import { isError } from "../protocol/replies.ts";
import { Client } from "../client/connect.ts";
import { request, runStreaming } from "../client/api.ts";
import { PythondError } from "../protocol/errors.ts";
import { resolveCode } from "./code-arg.ts";
import { echoFor } from "./echo.ts";
import { errLine, OutputStream, stderr } from "./out.ts";
import type { Parsed } from "./spec.ts";

const LEAVE_MS = 2000;

/** The exit status for a cell's final frame (see above). */
export function exitStatus(final: string): { code: number; quiet: boolean } {
  if (!isError(final)) return { code: 0, quiet: true };
  const m = /^ERR execution failed\nexit\((-?\d+)\)$/.exec(final);
  if (m) {
    const n = Number(m[1]) & 0xff;
    return { code: n, quiet: n === 0 };
  }
  return { code: 1, quiet: false };
}

function seconds(v: string | true | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!(n > 0)) throw new PythondError("usage", `--timeout takes a number of seconds > 0 (got ${String(v)})`);
  return n;
}

export async function runCommand(client: Client, a: Parsed): Promise<number> {
  const name = a.positional[0]!;
  const code = await resolveCode(a.code);
  const timeout = seconds(a.opts.timeout);
  const echo = echoFor();
  echo?.code("run", name, code);
  const out = new OutputStream();
  let cellId: string | undefined;
  let interruptedAt = 0;
  let interruptWanted = false;
  const interrupt = () => {
    interruptWanted = false;
    stderr(`\npysh: interrupting cell ${cellId} (Ctrl-C again within 2 s leaves it running)\n`);
    void Client.open()
      .then(async (c) => {
        try {
          await request(c, "int", [name, cellId!]);
        } finally {
          c.close();
        }
      })
      .catch((e) => errLine(PythondError.from(e).toFrame()));
  };
  const onSigint = () => {
    const now = Date.now();
    if (interruptedAt && now - interruptedAt < LEAVE_MS && cellId) {
      out.end();
      stderr(
        `\npysh: left cell ${cellId} running in '${name}'\n` +
          `  wait for it:   pysh wait ${name} ${cellId}\n` +
          `  interrupt it:  pysh int ${name} ${cellId}\n`,
      );
      process.exit(130);
    }
    interruptedAt = now;
    if (cellId) interrupt();
    else interruptWanted = true; // the id is on its way (it comes before any output)
  };
  process.on("SIGINT", onSigint);
  try {
    const r = await runStreaming(
      client,
      name,
      code,
      {
        timeout,
        onCell: (id) => {
          cellId = id;
          if (interruptWanted) interrupt();
        },
      },
      (c) => {
        out.write(c);
        echo?.output(c);
      },
    );
    out.end();
    const st = exitStatus(r.final);
    if (!st.quiet) errLine(r.final);
    if (st.code === 1 && interruptedAt && r.final.includes("KeyboardInterrupt")) return 130;
    return st.code;
  } finally {
    process.off("SIGINT", onSigint);
  }
}

export async function waitCommand(client: Client, a: Parsed): Promise<number> {
  const [name, cell] = a.positional as [string, string];
  if (/\s/.test(cell)) throw new PythondError("usage", `invalid cell id: ${JSON.stringify(cell)}`);
  const timeout = seconds(a.opts.timeout);
  const args = [name, cell, ...(timeout ? ["--timeout", String(timeout)] : [])];
  const out = new OutputStream();
  const echo = echoFor();
  const r = await runStreaming(client, name, "", { cmd: "wait", args }, (c) => {
    out.write(c);
    echo?.output(c);
  });
  out.end();
  const st = exitStatus(r.final);
  if (!st.quiet) errLine(r.final);
  if (r.cellId) await reportSkipped(client, name, r.cellId);
  return st.code;
}

/** A fork's names that could not come back (not picklable) are said on stderr, not only in poll. */
async function reportSkipped(client: Client, name: string, cell: string): Promise<void> {
  try {
    const d = JSON.parse(await request(client, "poll", [name, cell])) as { skipped?: string[] };
    if (d.skipped?.length) {
      stderr(`pysh: fork cell ${cell}: not merged back (not picklable): ${d.skipped.join(", ")}\n`);
    }
  } catch {
    // the cell was evicted meanwhile, or the daemon went away: nothing more to say
  }
}
