/**
 * `pythond join <url> --token T [--fingerprint FP | --pin cert.pem] [--id ID] [--label k=v]…
 * [--heartbeat S] [--install-service [--system [--run-as USER]] [--print]]`, and the seed's
 * spelling `--server-url ws://host:8765/ws --daemon-id worker-1`.
 * Runs in the foreground like `pythond daemon` (it is one: local socket, sessions, adoption) and
 * dials the hub. Thin: parse, check, call runNode; with --install-service the same checked
 * arguments go into a service unit instead (join-service.ts) and nothing is dialed.
 */
import { defineCommand, runCommand, type CommandDef } from "citty";
import { PythondError } from "../protocol/errors.ts";
import { allValues } from "./pyctl-remote.ts";
import { errLine, line } from "./out.ts";
import { cittyArgs, PYTHOND } from "./pyctl-commands.ts";
import { commandHelp, findCommand } from "./spec.ts";

let exitCode = 0;
let rawArgv: string[] = [];

const join = defineCommand({
  meta: { name: "pythond join", description: "join a hub as a node: dial out to it and serve its requests (no port opened here)" },
  args: cittyArgs(findCommand(PYTHOND, "join")!, ["url"]),
  async run({ args }) {
    const { parseLabels } = await import("../protocol/fleet.ts");
    const url = args.url ?? args["server-url"];
    const id = args.id ?? args["daemon-id"];
    if (args.id && args["daemon-id"] && args.id !== args["daemon-id"]) throw new PythondError("usage", "--id and --daemon-id disagree");
    const labels = parseLabels(allValues(rawArgv, "label"));
    const heartbeat = args.heartbeat === undefined ? 10 : Number(args.heartbeat);
    if (!(heartbeat > 0) || heartbeat > 3600) throw new PythondError("usage", `--heartbeat takes seconds > 0 (got ${JSON.stringify(args.heartbeat)})`);
    const idle = args["idle-timeout"] === undefined ? undefined : Number(args["idle-timeout"]);
    if (idle !== undefined && !(idle > 0)) throw new PythondError("usage", "--idle-timeout takes a number of seconds > 0");
    if (args.token !== undefined && !/^[\x21-\x7e]{1,256}$/.test(args.token)) throw new PythondError("usage", "--token: not a join token");
    if (args["install-service"]) {
      if (url === undefined) throw new PythondError("usage", "--install-service: give the hub URL (wss://HOST:PORT) the service should join");
      const { installNodeService } = await import("./join-service.ts");
      exitCode = installNodeService(rawArgv);
      return;
    }
    if (args.token !== undefined) {
      // The node runs for long: its join token stays out of `ps` for the rest of its life
      // (argv-scrub.ts).
      (await import("./argv-scrub.ts")).scrubArgv(args.token);
    }
    // From the environment too (a service's EnvironmentFile, or our own `pyctl restart`, which
    // hands it on there rather than on the command line). Not inherited by this node's workers.
    const token = args.token ?? takeEnvToken();
    const { runNode } = await import("../fleet/node/run.ts");
    await runNode({ url, token, fingerprint: args.fingerprint, pin: args.pin, id, labels, heartbeat, idleTimeout: idle, argv: withoutToken(rawArgv) });
    exitCode = -1; // keep running
  },
});

/** PYTHOND_JOIN_TOKEN, removed from our environment once read. */
function takeEnvToken(): string | undefined {
  const t = process.env.PYTHOND_JOIN_TOKEN;
  delete process.env.PYTHOND_JOIN_TOKEN;
  if (t !== undefined && !/^[\x21-\x7e]{1,256}$/.test(t)) throw new PythondError("usage", "PYTHOND_JOIN_TOKEN: not a join token");
  return t || undefined;
}

/** The arguments `pyctl restart` starts this node with again: the token goes by the environment. */
function withoutToken(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--token") i++;
    else if (!argv[i]!.startsWith("--token=")) out.push(argv[i]!);
  }
  return out;
}

export async function main(argv: string[]): Promise<number> {
  rawArgv = argv;
  if (argv.some((a) => a === "--help" || a === "-h")) {
    line(commandHelp("pythond", findCommand(PYTHOND, "join")!));
    return 0;
  }
  try {
    await runCommand(join as CommandDef, { rawArgs: argv });
    return exitCode;
  } catch (e) {
    errLine(PythondError.from(e).toFrame());
    return 1;
  }
}
