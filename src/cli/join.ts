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
      // (argv-scrub.ts; our own copy in rawArgv still serves `pyctl restart`).
      (await import("./argv-scrub.ts")).scrubArgv(args.token);
    }
    const { runNode } = await import("../fleet/node/run.ts");
    await runNode({ url, token: args.token, fingerprint: args.fingerprint, pin: args.pin, id, labels, heartbeat, idleTimeout: idle, argv: rawArgv });
    exitCode = -1; // keep running
  },
});

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
