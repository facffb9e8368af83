/**
 * pyctl: daemon control (citty; imported lazily so pysh never pays for it). Thin: each command
 * parses, calls one core function, prints.
 */
import { defineCommand, runCommand, renderUsage, type CommandDef } from "citty";
import { PythondError } from "../protocol/errors.ts";
import { VERSION } from "../protocol/version.ts";
import { socketPath } from "../paths.ts";
import { Client } from "../client/connect.ts";
import { request, ReplyError } from "../client/api.ts";
import { errLine, line } from "./out.ts";

let exitCode = 0;
let daemonArgv: string[] = [];

export const startCommand = defineCommand({
  meta: { name: "start", description: "run the daemon in the foreground (same as: pythond daemon)" },
  args: {
    listen: { type: "string", description: "also listen on HOST:PORT (TLS unless loopback; repeatable)" },
    tls: { type: "boolean", description: "use TLS on --listen" },
    "show-token": { type: "boolean", description: "print the token and certificate fingerprint" },
    "token-file": { type: "string", description: "keep the token in this file (0600) across restarts" },
    san: { type: "string", description: "extra certificate name or address (repeatable; on first generation)" },
    "local-tcp": { type: "boolean", description: "local TCP mode: loopback TCP + token + daemon.json (Windows' way)" },
    "max-frame": { type: "string", description: "largest frame accepted, in MiB (default 64)" },
    "idle-timeout": { type: "string", description: "end sessions unused for this many seconds (default: never)" },
    "max-inflight": { type: "string", description: "large request bodies in flight at once, all clients, in MiB (default 128)" },
    heartbeat: { type: "string", description: "fleet hub: seconds between heartbeats to each node (default 10)" },
  },
  async run({ args }) {
    const remote = (await import("./pyctl-remote.ts")).startRemoteOptions(daemonArgv, args);
    const { runDaemon, DEFAULT_MAX_FRAME } = await import("../daemon/server.ts");
    const maxFrame = args["max-frame"] ? Number(args["max-frame"]) * 1024 * 1024 + 4096 : DEFAULT_MAX_FRAME;
    if (!(maxFrame > 4096)) throw new PythondError("usage", "--max-frame takes a size in MiB > 0");
    const idle = args["idle-timeout"] === undefined ? undefined : Number(args["idle-timeout"]);
    if (idle !== undefined && !(idle > 0)) throw new PythondError("usage", "--idle-timeout takes a number of seconds > 0");
    const inflight = args["max-inflight"] === undefined ? undefined : Number(args["max-inflight"]) * 1024 * 1024;
    if (inflight !== undefined && !(inflight > 0)) throw new PythondError("usage", "--max-inflight takes a size in MiB > 0");
    const heartbeat = args.heartbeat === undefined ? undefined : Number(args.heartbeat);
    if (heartbeat !== undefined && !(heartbeat > 0 && heartbeat <= 3600)) throw new PythondError("usage", "--heartbeat takes seconds > 0");
    await runDaemon({ socket: socketPath(), maxFrame, maxInflight: inflight, idleTimeout: idle, argv: daemonArgv, remote, heartbeat });
    exitCode = -1; // keep running: the server holds the event loop
  },
});

const stop = defineCommand({
  meta: { name: "stop", description: "stop the daemon and end its sessions" },
  args: { "keep-sessions": { type: "boolean", description: "end only the daemon; sessions live on" } },
  async run({ args }) {
    const client = await Client.open();
    try {
      line(await request(client, "stop", args["keep-sessions"] ? ["--keep-sessions"] : []));
    } finally {
      client.close();
    }
  },
});

const restart = defineCommand({
  meta: { name: "restart", description: "restart the daemon in place (sessions live on; picks up an upgraded binary)" },
  async run() {
    const client = await Client.open();
    try {
      line(await request(client, "restart"));
    } finally {
      client.close();
    }
  },
});

const status = defineCommand({
  meta: { name: "status", description: "daemon endpoint and liveness" },
  async run() {
    if (process.env.PYTHOND_HOST || process.env.PYTHOND_LOCAL_TCP === "1" || process.platform === "win32") {
      exitCode = await (await import("./pyctl-remote.ts")).remoteStatus();
      return;
    }
    const sock = socketPath();
    line(`socket: ${sock}`);
    try {
      const client = await Client.open({ socket: sock, remote: null });
      const info = JSON.parse(await request(client, "hello")) as { version: string; pid: number; listen?: string[] };
      client.close();
      line("alive: True");
      line(`pid: ${info.pid}`);
      line(`version: ${info.version}`);
      for (const l of info.listen ?? []) line(`listen: ${l}`);
    } catch {
      line("alive: False");
      exitCode = 1;
    }
  },
});

const tlsCommands = {
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

const pyctl = defineCommand({
  meta: { name: "pyctl", version: VERSION, description: "control the pythond daemon" },
  subCommands: { start: startCommand, stop, restart, status, ...tlsCommands },
});

export async function main(argv: string[]): Promise<number> {
  if (argv[0] === "--version" || argv[0] === "-V") {
    line((await import("../build-info.ts")).versionLine("pyctl"));
    return 0;
  }
  if (argv.length === 0 || argv[0] === "--help" || argv[0] === "-h") {
    line(await renderUsage(pyctl as CommandDef));
    return argv.length === 0 ? 1 : 0;
  }
  if (argv[0] === "start") daemonArgv = argv.slice(1);
  if (argv[0] === "install-service") (await import("./pyctl-service.ts")).setServiceArgv(argv.slice(1));
  // citty's runCommand ignores --help: `pyctl start --help` would start a daemon.
  const sub = (pyctl.subCommands as Record<string, CommandDef | (() => Promise<CommandDef>)>)[argv[0]!];
  if (sub && argv.slice(1).some((a) => a === "--help" || a === "-h")) {
    line(await renderUsage(typeof sub === "function" ? await sub() : sub, pyctl as CommandDef));
    return 0;
  }
  try {
    await runCommand(pyctl as CommandDef, { rawArgs: argv });
    return exitCode;
  } catch (e) {
    if (e instanceof ReplyError) errLine(e.reply);
    else if (e instanceof PythondError) errLine(e.toFrame());
    else errLine(PythondError.from(e).toFrame());
    return 1;
  }
}
