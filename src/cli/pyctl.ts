/**
 * pyctl: daemon control. Thin: each command parses, calls one core function, prints.
 *
 * Commands are citty command definitions (registration format), but argv is parsed against the
 * command table (src/cli/pyctl-commands.ts, spec.ts) and not by citty: citty accepts unknown flags
 * silently (`pyctl stop --keep-session` once stopped everything), takes `--help` even after `--`,
 * and colours help into pipes. A citty command with no table entry gets a spec derived from its
 * `args` (specFromCitty), so it is strict too; test/e2e/cli.test.ts asks for a table entry.
 */
import { defineCommand, type ArgsDef, type CommandDef } from "citty";
import { PythondError } from "../protocol/errors.ts";
import { VERSION } from "../protocol/version.ts";
import { socketPath } from "../paths.ts";
import { Client } from "../client/connect.ts";
import { request, ReplyError } from "../client/api.ts";
import { errLine, line } from "./out.ts";
import { cittyArgs, PYCTL } from "./pyctl-commands.ts";
import { commandHelp, findCommand, parseArgs, roleHelp, unknownCommand, usageError, type CmdSpec, type Parsed, type RoleSpec } from "./spec.ts";

let exitCode = 0;
let daemonArgv: string[] = [];
const table = (name: string) => findCommand(PYCTL, name)!;

export const startCommand = defineCommand({
  meta: { name: "start", description: table("start").summary },
  args: cittyArgs(table("start")),
  async run({ args }) {
    const remote = (await import("./pyctl-remote.ts")).startRemoteOptions(daemonArgv, args);
    const { runDaemon, DEFAULT_MAX_FRAME } = await import("../daemon/server.ts");
    const { logLevelFrom } = await import("../daemon/log-out.ts");
    const logLevel = logLevelFrom(args["log-level"], args.quiet === true);
    const maxFrame = args["max-frame"] ? Number(args["max-frame"]) * 1024 * 1024 + 4096 : DEFAULT_MAX_FRAME;
    if (!(maxFrame > 4096)) throw new PythondError("usage", "--max-frame takes a size in MiB > 0");
    const idle = args["idle-timeout"] === undefined ? undefined : Number(args["idle-timeout"]);
    if (idle !== undefined && !(idle > 0)) throw new PythondError("usage", "--idle-timeout takes a number of seconds > 0");
    const inflight = args["max-inflight"] === undefined ? undefined : Number(args["max-inflight"]) * 1024 * 1024;
    if (inflight !== undefined && !(inflight > 0)) throw new PythondError("usage", "--max-inflight takes a size in MiB > 0");
    const heartbeat = args.heartbeat === undefined ? undefined : Number(args.heartbeat);
    if (heartbeat !== undefined && !(heartbeat > 0 && heartbeat <= 3600)) throw new PythondError("usage", "--heartbeat takes seconds > 0");
    await runDaemon({ socket: socketPath(), maxFrame, maxInflight: inflight, idleTimeout: idle, argv: daemonArgv, remote, heartbeat, logLevel });
    exitCode = -1; // keep running: the server holds the event loop
  },
});

async function ask(cmd: string, args: string[] = []): Promise<void> {
  const client = await Client.open();
  try {
    line(await request(client, cmd, args));
  } finally {
    client.close();
  }
}

const stop = defineCommand({
  meta: { name: "stop", description: table("stop").summary },
  args: cittyArgs(table("stop")),
  run: ({ args }) => ask("stop", args["keep-sessions"] ? ["--keep-sessions"] : []),
});

const restart = defineCommand({
  meta: { name: "restart", description: table("restart").summary },
  run: () => ask("restart"),
});

const status = defineCommand({
  meta: { name: "status", description: table("status").summary },
  args: cittyArgs(table("status")),
  async run({ args }) {
    if (process.env.PYTHOND_HOST || process.env.PYTHOND_LOCAL_TCP === "1" || process.platform === "win32") {
      exitCode = await (await import("./pyctl-remote.ts")).remoteStatus(args.json === true);
      return;
    }
    const sock = socketPath();
    const out: { socket: string; alive: boolean; pid?: number; version?: string; listen?: string[] } = { socket: sock, alive: false };
    try {
      const client = await Client.open({ socket: sock, remote: null });
      const info = JSON.parse(await request(client, "hello")) as { version: string; pid: number; listen?: string[] };
      client.close();
      Object.assign(out, { alive: true, pid: info.pid, version: info.version, listen: info.listen ?? [] });
    } catch {
      exitCode = 1;
    }
    if (args.json) return line(JSON.stringify(out));
    line(`socket: ${sock}`);
    line(`alive: ${out.alive ? "True" : "False"}`);
    if (!out.alive) return;
    line(`pid: ${out.pid}`);
    line(`version: ${out.version}`);
    for (const l of out.listen ?? []) line(`listen: ${l}`);
  },
});

/** Any citty command (its args type varies per command, as in citty's own SubCommandsDef). */
type AnyCommand = CommandDef<any>;
type Lazy = AnyCommand | (() => Promise<AnyCommand>);

/** Every pyctl command that runs something (help/completion are handled in main). */
export const SUBCOMMANDS: Record<string, Lazy> = {
  start: startCommand,
  stop,
  restart,
  status,
  cert: () => import("./pyctl-tls.ts").then((m) => m.cert),
  trust: () => import("./pyctl-tls.ts").then((m) => m.trust),
  pin: () => import("./pyctl-tls.ts").then((m) => m.pin),
  connect: () => import("./pyctl-remote.ts").then((m) => m.connect),
  disconnect: () => import("./pyctl-remote.ts").then((m) => m.disconnect),
  "install-service": () => import("./pyctl-service.ts").then((m) => m.installServiceCommand),
  "uninstall-service": () => import("./pyctl-service.ts").then((m) => m.uninstallServiceCommand),
  "join-token": () => import("./pyctl-fleet.ts").then((m) => (m.setRawArgv(process.argv), m.joinToken)),
  node: () => import("./pyctl-fleet.ts").then((m) => m.node),
};

const resolveDef = async (l: Lazy): Promise<AnyCommand> => (typeof l === "function" ? await l() : l);

/** A spec from a citty definition, for a command not (yet) in the table. */
export function specFromCitty(name: string, def: CommandDef): CmdSpec {
  const args = (def.args ?? {}) as ArgsDef;
  const pos = Object.entries(args).filter(([, a]) => a.type === "positional");
  const options: CmdSpec["options"] = {};
  for (const [k, a] of Object.entries(args)) {
    if (a.type === "string") options[k] = { value: (a as { valueHint?: string }).valueHint ?? k.toUpperCase(), help: a.description ?? "" };
    else if (a.type === "boolean") options[k] = { help: a.description ?? "" };
  }
  const meta = (def.meta ?? {}) as { description?: string };
  return {
    name,
    args: pos.map(([k, a]) => (a.required === false ? `[${k}]` : `<${k}>`)).join(" ") || undefined,
    summary: meta.description ?? "",
    options,
    examples: [],
    min: pos.filter(([, a]) => a.required !== false).length,
    max: pos.length,
  };
}

/** The table plus any registered command it lacks (help and completion then show it too). */
export async function pyctlSpec(): Promise<RoleSpec> {
  const missing = Object.keys(SUBCOMMANDS).filter((k) => !findCommand(PYCTL, k));
  const extra = await Promise.all(missing.map(async (k) => specFromCitty(k, await resolveDef(SUBCOMMANDS[k]!))));
  return { ...PYCTL, commands: [...PYCTL.commands, ...extra] };
}

/** citty's `args` object from our parse: positionals by their names in the definition. */
function cittyValues(def: CommandDef, a: Parsed): Record<string, unknown> {
  const out: Record<string, unknown> = { _: a.positional };
  let i = 0;
  for (const [k, d] of Object.entries((def.args ?? {}) as ArgsDef)) {
    if (d.type === "positional") out[k] = a.positional[i++];
    else if (d.type === "boolean") out[k] = a.opts[k] === true;
    else if (a.opts[k] !== undefined) out[k] = a.opts[k];
  }
  return out;
}

export async function main(argv: string[]): Promise<number> {
  const cmd = argv[0];
  if (cmd === "--version" || cmd === "-V") {
    line((await import("../build-info.ts")).versionLine("pyctl"));
    return 0;
  }
  try {
    const spec = await pyctlSpec();
    if (!cmd || cmd === "--help" || cmd === "-h") {
      line(roleHelp(spec, VERSION));
      return cmd ? 0 : 1;
    }
    const c = findCommand(spec, cmd);
    if (!c) throw unknownCommand(spec, cmd);
    if (cmd === "__complete") {
      const { completeWords } = await import("./completion.ts");
      for (const w of await completeWords(spec, argv.slice(1))) line(w);
      return 0;
    }
    const a = parseArgs("pyctl", c, argv.slice(1));
    if (a.help) {
      line(commandHelp("pyctl", c));
      return 0;
    }
    if (cmd === "help") {
      const target = a.positional[0] && findCommand(spec, a.positional[0]);
      if (a.positional[0] && !target) throw unknownCommand(spec, a.positional[0]);
      line(target ? commandHelp("pyctl", target) : roleHelp(spec, VERSION));
      return 0;
    }
    if (cmd === "completion") {
      line((await import("./completion.ts")).completionScript("pyctl", a.positional[0]!));
      return 0;
    }
    if (cmd === "start") daemonArgv = argv.slice(1);
    if (cmd === "install-service") (await import("./pyctl-service.ts")).setServiceArgv(argv.slice(1));
    let def = await resolveDef(SUBCOMMANDS[cmd]!);
    if (c.subcommands) {
      // `pyctl node forget <id>`: the citty subcommand named by the first word
      const sub = a.positional[0]!;
      if (!c.subcommands.includes(sub)) throw usageError("pyctl", c, `unknown: ${sub}`);
      def = await resolveDef((def.subCommands as Record<string, Lazy>)[sub]!);
      a.positional.shift();
    }
    await def.run?.({ rawArgs: argv.slice(1), args: cittyValues(def, a) as never, cmd: def, data: undefined });
    return exitCode;
  } catch (e) {
    if (e instanceof ReplyError) errLine(e.reply);
    else if (e instanceof PythondError) errLine(e.toFrame());
    else errLine(PythondError.from(e).toFrame());
    return 1;
  }
}
