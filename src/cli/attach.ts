/**
 * pysh attach <name> [--read-only]: a human terminal on the live namespace (src/pty/attach.ts).
 * Imported lazily by pysh.ts, so `pysh run` never loads the terminal code.
 */
import { ReplyError } from "../client/api.ts";
import { PythondError } from "../protocol/errors.ts";
import { attach } from "../pty/attach.ts";
import { errLine, stderr, stdout } from "./out.ts";

const USAGE = "usage: pysh attach <name> [--read-only]";
const SIGNAL_CODES: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGTERM: 15 };

export async function attachMain(argv: string[]): Promise<number> {
  const readOnly = argv.includes("--read-only");
  const rest = argv.filter((a) => a !== "--read-only");
  if (rest.length !== 1 || rest[0]!.startsWith("-")) {
    errLine(new PythondError("usage", USAGE).toFrame());
    return 1;
  }
  const name = rest[0]!;
  try {
    const outcome = await attach(name, {
      readOnly,
      output: stdout,
      attached: () =>
        stderr(
          `pysh: attached to '${name}'${readOnly ? " (read-only)" : ""}: a Python REPL on the namespace agents use too.\n` +
            "pysh: Ctrl-] detaches (the session keeps running).\n",
        ),
    });
    if (outcome.kind === "detached") {
      stderr(`\npysh: detached from '${name}' (the session keeps running)\n`);
      return 0;
    }
    if (outcome.kind === "signal") {
      stderr(`\npysh: ${outcome.signal}: detached from '${name}'\n`);
      return 128 + (SIGNAL_CODES[outcome.signal] ?? 15);
    }
    stderr("\n");
    errLine(outcome.message);
    return 1;
  } catch (e) {
    errLine(e instanceof ReplyError ? e.reply : PythondError.from(e).toFrame());
    return 1;
  }
}
