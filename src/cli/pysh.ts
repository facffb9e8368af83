/**
 * pysh: the session client. Thin: parse, call the client API, print, exit.
 * Hand-parsed (not citty) so that `pysh run` stays fast and code arguments such as `-1 + 2`
 * are code, not flags.
 */
import { Client } from "../client/connect.ts";
import { request, runStreaming, ReplyError } from "../client/api.ts";
import { PythondError } from "../protocol/errors.ts";
import { encodePathArg } from "../protocol/frame.ts";
import { VERSION } from "../protocol/version.ts";
import { parseCodeArgs, resolveCode } from "./code-arg.ts";
import { errLine, line, OutputStream } from "./out.ts";

const HELP = `pysh ${VERSION} -- client for pythond sessions

  pysh new <name> [--replace] [--python PATH] [--idle-timeout S]   create a session
  pysh run <name> [--timeout S] <code|@file|->  run code, print its output (exit 1 on error)
  pysh fire <name> <code|@file|->               run in a thread, return a cell id
  pysh fork <name> <code|@file|->               run in a forked child, merge picklable names back
  pysh poll <name> [cell_id]                    JSON state of a cell (latest without an id)
  pysh wait <name> <cell_id> [--timeout S]      block until the cell ends; print like run
  pysh attach <name> [--read-only]              human REPL on the session (Ctrl-] detaches)
  pysh int <name>                               interrupt running cells
  pysh kill <name>                              end the session
  pysh ls [node]                                list sessions (and nodes; a node's sessions)
  pysh nodes [--json]                           the hub's nodes: state, address, labels, heartbeat
  pysh status <name>                            JSON health
  pysh vars <name>                              JSON list of namespace names
  pysh complete <name> <text>                   JSON completion candidates
  pysh mcp [--print-config]                     MCP server (stdio) for agents

A session on a node of this hub is named node/session: pysh run worker-1/work "x".

Nodes of this hub (shell commands, shells, files, tunnels):
  pysh sh <node> [--timeout S] [--cwd DIR] [--env K=V]... [--detach] [--] <command...>
                                                run a shell command there (exit: its exit code)
  pysh sh --all | -l k=v[,k=v] [--max-concurrency N] [--fail-fast] [--json] [--] <command...>
                                                ...on every matching node at once
  pysh job <node> [<id>] [--wait | --kill] [--json]   a command's state and kept output (no id: list)
  pysh shell <node> [--cwd DIR] [--linger S] | --attach <id> [--read-only] | --list
                                                a login shell in a PTY there (Ctrl-] detaches)
  pysh put <node> [-r] [--no-resume] <local|-> <remote>     copy there (SHA-256 checked, resumes)
  pysh get <node> [-r] [--no-resume] <remote> <local|->     copy from there
  pysh forward <node> [BIND:]LOCAL_PORT:HOST:PORT           like ssh -L, until Ctrl-C
  pysh run -l k=v[,k=v] | --all [--session NAME] [--json] <code>   a cell on every matching node

Environment: PYTHOND_SOCK (local socket), PYTHOND_HOST/PYTHOND_TOKEN/PYTHOND_TLS (remote daemon;
its certificate must be pinned with pyctl pin), PYTHOND_CONNECT_TIMEOUT (seconds, default 10).
`;

type Command = (client: Client, argv: string[]) => Promise<number>;

async function simple(client: Client, cmd: string, args: string[]): Promise<number> {
  line(await request(client, cmd, args));
  return 0;
}

/** JSON replies whose status says the cell failed still print (they are data) but exit 1. */
function printCellJson(reply: string): number {
  line(reply);
  try {
    return (JSON.parse(reply) as { status?: string }).status === "error" ? 1 : 0;
  } catch {
    return 0;
  }
}

const COMMANDS: Record<string, Command> = {
  async run(client, argv) {
    const a = parseCodeArgs(argv, 1, ["timeout"]);
    if (!a.positional[0]) throw new PythondError("usage", "usage: pysh run <name> [--timeout S] <code|@file|->");
    const code = await resolveCode(a.code);
    const timeout = a.opts.timeout === undefined ? undefined : Number(a.opts.timeout);
    if (timeout !== undefined && !(timeout > 0)) throw new PythondError("usage", "--timeout takes a number of seconds > 0");
    const out = new OutputStream();
    const r = await runStreaming(client, a.positional[0], code, { timeout }, (c) => out.write(c));
    out.end();
    if (!r.ok) errLine(r.final);
    return r.ok ? 0 : 1;
  },
  async fire(client, argv) {
    return cellCommand(client, "fire", argv);
  },
  async fork(client, argv) {
    return cellCommand(client, "fork", argv);
  },
  async new(client, argv) {
    const a = parseCodeArgs(argv, 1, ["python", "idle-timeout"], ["replace"]);
    if (!a.positional[0]) throw new PythondError("usage", "usage: pysh new <name> [--replace] [--python PATH]");
    // Paths travel percent-encoded: the command line of a frame is split on spaces.
    const args = [a.positional[0], "--cwd", encodePathArg(process.cwd())];
    if (a.opts.replace) args.push("--replace");
    if (typeof a.opts.python === "string") args.push("--python", encodePathArg(a.opts.python));
    if (typeof a.opts["idle-timeout"] === "string") args.push("--idle-timeout", a.opts["idle-timeout"]);
    if (a.code !== null) args.push(...a.code.split(" ")); // extra words: let the daemon refuse them
    return simple(client, "new", args);
  },
  async poll(client, argv) {
    return printCellJson(await request(client, "poll", argv));
  },
  async wait(client, argv) {
    const a = parseCodeArgs(argv, 2, ["timeout"]);
    if (a.positional.length < 2 || a.code !== null) throw new PythondError("usage", "usage: pysh wait <name> <cell_id> [--timeout S]");
    const args = [...a.positional, ...(a.opts.timeout ? ["--timeout", String(a.opts.timeout)] : [])];
    const out = new OutputStream();
    const r = await runStreaming(client, a.positional[0]!, "", { cmd: "wait", args }, (c) => out.write(c));
    out.end();
    if (!r.ok) errLine(r.final);
    return r.ok ? 0 : 1;
  },
  async complete(client, argv) {
    const [name, ...text] = argv;
    return simple(client, "complete", name ? [name, ...text] : []);
  },
};
for (const cmd of ["int", "kill", "ls", "status", "vars", "nodes"]) COMMANDS[cmd] = (client, argv) => simple(client, cmd, argv);

async function cellCommand(client: Client, cmd: "fire" | "fork", argv: string[]): Promise<number> {
  const a = parseCodeArgs(argv, 1);
  if (!a.positional[0]) throw new PythondError("usage", `usage: pysh ${cmd} <name> <code|@file|->`);
  const code = await resolveCode(a.code);
  line(await request(client, cmd, [a.positional[0]], code));
  return 0;
}

/** Node commands (src/cli/fleet/): loaded only when used. */
const FLEET: Record<string, true> = { sh: true, job: true, shell: true, put: true, get: true, forward: true };

export async function main(argv: string[]): Promise<number> {
  const cmd = argv[0];
  if (!cmd || cmd === "--help" || cmd === "-h" || cmd === "help") {
    line(HELP.trimEnd());
    return cmd ? 0 : 1;
  }
  if (cmd === "--version" || cmd === "-V") {
    line((await import("../build-info.ts")).versionLine("pysh"));
    return 0;
  }
  if (cmd === "run" && (argv[1] === "-l" || argv[1] === "--all" || argv[1]?.startsWith("--selector"))) {
    const m = await import("./fleet/run-fanout.ts");
    return m.runFanoutMain(argv.slice(1));
  }
  if (cmd in FLEET) {
    const m = await import("./fleet/main.ts");
    return m.fleetMain(cmd, argv.slice(1));
  }
  if (cmd === "mcp") return (await import("../mcp/main.ts")).mcpMain(argv.slice(1));
  if (cmd === "attach") {
    const { attachMain } = await import("./attach.ts");
    return attachMain(argv.slice(1));
  }
  const fn = COMMANDS[cmd];
  if (!fn) {
    errLine(new PythondError("unknown_command", `unknown: ${cmd} (see pysh --help)`).toFrame());
    return 1;
  }
  let client: Client | undefined;
  try {
    client = await Client.open();
    return await fn(client, argv.slice(1));
  } catch (e) {
    if (e instanceof ReplyError) errLine(e.reply);
    else errLine(PythondError.from(e).toFrame());
    return 1;
  } finally {
    client?.close();
  }
}
