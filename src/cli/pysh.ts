/**
 * pysh: the session client. Thin: parse (against the command table, src/cli/pysh-commands.ts),
 * call the client API, print, exit. Hand-parsed (not citty) so that `pysh run` stays fast and code
 * arguments such as `-1 + 2` are code, not flags; an unknown flag is refused before anything is
 * sent. `run`/`wait` live in pysh-run.ts; help, completion and attach are imported only when used.
 */
import { Client } from "../client/connect.ts";
import { request, ReplyError } from "../client/api.ts";
import { PythondError } from "../protocol/errors.ts";
import { checkName } from "../protocol/names.ts";
import { VERSION } from "../protocol/version.ts";
import { resolveCode } from "./code-arg.ts";
import { errLine, line } from "./out.ts";
import { PYSH } from "./pysh-commands.ts";
import { runCommand, waitCommand } from "./pysh-run.ts";
import { commandHelp, findCommand, parseArgs, roleHelp, unknownCommand, type Parsed } from "./spec.ts";

type Command = (client: Client, a: Parsed) => Promise<number>;

/** `new`'s options, checked (--cwd exists) before connecting: see pysh-new.ts. */
let newOptions: string[] | undefined;

/** A word that goes onto the command line of a frame: no spaces or newlines can add another. */
function word(w: string, what: string): string {
  if (!w || /\s/.test(w)) throw new PythondError("usage", `invalid ${what}: ${JSON.stringify(w)}`);
  return w;
}

async function simple(client: Client, cmd: string, args: string[]): Promise<number> {
  line(await request(client, cmd, args));
  return 0;
}

export const COMMANDS: Record<string, Command> = {
  run: runCommand,
  wait: waitCommand,
  fire: (client, a) => cellCommand(client, "fire", a),
  fork: (client, a) => cellCommand(client, "fork", a),
  new: (client, a) => simple(client, "new", [a.positional[0]!, ...newOptions!]),
  async poll(client, a) {
    // A poll that got an answer exits 0 whatever the cell's state (the JSON says it); an unknown
    // cell or session is the error (ERR …, exit 1).
    const args = [a.positional[0]!, ...(a.positional[1] ? [word(a.positional[1], "cell id")] : [])];
    return simple(client, "poll", args);
  },
  async complete(client, a) {
    return simple(client, "complete", [a.positional[0]!, ...(a.code ?? "").split(" ").filter(Boolean)]);
  },
  async ls(client, a) {
    // `ls <node>`: that node's sessions (the hub relays); --json parses either listing
    const text = await request(client, "ls", a.positional);
    if (a.opts.json) line(JSON.stringify((await import("./ls-json.ts")).parseLs(text)));
    else line(text);
    return 0;
  },
  async int(client, a) {
    const args = [a.positional[0]!, ...(a.positional[1] ? [word(a.positional[1], "cell id")] : [])];
    return simple(client, "int", args);
  },
  nodes: (client, a) => simple(client, "nodes", a.opts.json ? ["--json"] : []),
};
for (const cmd of ["kill", "status", "vars"]) COMMANDS[cmd] = (client, a) => simple(client, cmd, a.positional);

async function cellCommand(client: Client, cmd: "fire" | "fork", a: Parsed): Promise<number> {
  const name = a.positional[0]!;
  const code = await resolveCode(a.code);
  const { echoFor } = await import("./echo.ts");
  const echo = echoFor();
  echo?.code(cmd, name, code);
  const reply = await request(client, cmd, [name], code);
  line(reply);
  echo?.output(reply + "\n");
  return 0;
}

/** Commands that need no daemon: help, completion, the completion helper, attach (its own). */
async function local(cmd: string, argv: string[]): Promise<number | undefined> {
  if (cmd === "help") {
    const target = argv[0] && findCommand(PYSH, argv[0]);
    if (argv[0] && !target) throw unknownCommand(PYSH, argv[0]);
    line(target ? commandHelp("pysh", target) : roleHelp(PYSH, VERSION));
    return 0;
  }
  if (cmd === "completion") {
    const { completionScript } = await import("./completion.ts");
    line(completionScript("pysh", argv[0]!));
    return 0;
  }
  if (cmd === "__complete") {
    const { completeWords } = await import("./completion.ts");
    for (const c of await completeWords(PYSH, argv)) line(c);
    return 0;
  }
  if (cmd === "attach") {
    const { attachMain } = await import("./attach.ts");
    return attachMain(argv);
  }
  return undefined;
}

/** Options of `pysh run -l/--all` only. */
const FANOUT_ONLY = ["session", "max-concurrency", "json"] as const;

/** Node commands (src/cli/fleet/): loaded only when used; their own parsers take the raw words. */
const FLEET: Record<string, true> = { sh: true, job: true, shell: true, put: true, get: true, forward: true };

export async function main(argv: string[]): Promise<number> {
  const cmd = argv[0];
  if (!cmd || cmd === "--help" || cmd === "-h") {
    line(roleHelp(PYSH, VERSION));
    return cmd ? 0 : 1;
  }
  if (cmd === "--version" || cmd === "-V") {
    line((await import("../build-info.ts")).versionLine("pysh"));
    return 0;
  }
  let client: Client | undefined;
  try {
    const spec = findCommand(PYSH, cmd);
    if (!spec) throw unknownCommand(PYSH, cmd);
    if (cmd === "__complete") return (await local(cmd, argv.slice(1)))!;
    const a = parseArgs("pysh", spec, argv.slice(1));
    if (a.help) {
      line(commandHelp("pysh", spec));
      return 0;
    }
    // Checked against the table above (strict flags, --help); the command's own parser then
    // takes the raw words (the fleet commands, the MCP server, run on many nodes).
    if (cmd in FLEET) return await (await import("./fleet/main.ts")).fleetMain(cmd, argv.slice(1));
    if (cmd === "mcp") return await (await import("../mcp/main.ts")).mcpMain(argv.slice(1));
    if (cmd === "run" && (a.opts.all || a.opts.selector)) return await (await import("./fleet/run-fanout.ts")).runFanoutMain(argv.slice(1));
    if (cmd === "run" && FANOUT_ONLY.some((k) => a.opts[k] !== undefined)) {
      throw new PythondError("usage", `--${FANOUT_ONLY.find((k) => a.opts[k] !== undefined)} goes with -l k=v or --all (a cell on many nodes) -- see: pysh run --help`);
    }
    // Checked here, before framing, so a typo gets the rule instead of a confusing reply.
    // `proxy/session` passes (remote sessions through a proxy; the daemon decides).
    if (spec.complete?.[0] === "session") {
      const parts = a.positional[0]!.split("/");
      (parts.length > 2 ? [a.positional[0]!] : parts).forEach(checkName);
    }
    if (cmd === "new") newOptions = (await import("./pysh-new.ts")).checkNewOptions(a);
    const done = await local(cmd, argv.slice(1));
    if (done !== undefined) return done;
    client = await Client.open();
    return await COMMANDS[cmd]!(client, a);
  } catch (e) {
    if (e instanceof ReplyError) errLine(e.reply);
    else errLine(PythondError.from(e).toFrame());
    return 1;
  } finally {
    client?.close();
  }
}
