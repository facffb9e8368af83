/**
 * pyctl install-service / uninstall-service: a systemd unit (launchd plist on macOS) that runs
 * this binary's daemon; thin: parse, build the spec, write or print (src/service/).
 */
import { defineCommand } from "citty";
import { PythondError } from "../protocol/errors.ts";
import { allValues } from "./pyctl-remote.ts";
import { line } from "./out.ts";
import { daemonSpec, defaultFormat, homeOf, installService, nodeSpec, renderService, defaultRunAs, uninstallService, type Placement, type ServiceFormat } from "../service/install.ts";

const LOOPBACK = /^(127\.|localhost:|\[::1\]:)/;

let rawArgv: string[] = [];
/** pyctl.ts hands over the raw words (--listen and --san repeat; citty keeps one). */
export function setServiceArgv(argv: string[]): void {
  rawArgv = argv;
}

function placement(args: { system?: boolean; user?: boolean; format?: string; dir?: string }): Placement {
  if (args.system && args.user) throw new PythondError("usage", "--user and --system exclude each other");
  const format = (args.format ?? defaultFormat()) as ServiceFormat;
  if (format !== "systemd" && format !== "launchd") throw new PythondError("usage", "--format takes systemd or launchd");
  return { system: args.system === true, format, dir: args.dir };
}

const common = {
  user: { type: "boolean", description: "the user's own service manager (default)" },
  system: { type: "boolean", description: "system-wide (needs root); runs as --run-as" },
  format: { type: "string", description: "systemd or launchd (default: this OS's)" },
  dir: { type: "string", description: "write into this directory instead of the service manager's" },
} as const;

export const installServiceCommand = defineCommand({
  meta: { name: "install-service", description: "run the daemon as a service (systemd unit; launchd plist on macOS)" },
  args: {
    ...common,
    listen: { type: "string", description: "also listen on HOST:PORT (repeatable; as pyctl start)" },
    tls: { type: "boolean", description: "TLS on --listen (always on for non-loopback)" },
    "token-file": { type: "string", description: "token kept here (default with a non-loopback --listen: ~/.pythond/service.token)" },
    san: { type: "string", description: "extra certificate name (repeatable)" },
    "idle-timeout": { type: "string", description: "end sessions unused for this many seconds" },
    "run-as": { type: "string", description: "--system: the account to run as (default: the sudo caller, else you)" },
    print: { type: "boolean", description: "print the unit and write nothing" },
  },
  run({ args }) {
    const p = placement(args);
    const runAs = p.system ? args["run-as"] ?? defaultRunAs() : undefined;
    if (args["run-as"] && !p.system) throw new PythondError("usage", "--run-as applies to --system services");
    const daemonArgs: string[] = [];
    const listen = allValues(rawArgv, "listen");
    for (const l of listen) daemonArgs.push("--listen", l);
    for (const s of allValues(rawArgv, "san")) daemonArgs.push("--san", s);
    if (args.tls) daemonArgs.push("--tls");
    let tokenFile = args["token-file"];
    // A token made anew at each start could not be known by clients of a service: keep it.
    if (!tokenFile && listen.some((l) => !LOOPBACK.test(l))) tokenFile = `${homeOf(runAs ?? defaultRunAs())}/.pythond/service.token`;
    if (tokenFile) daemonArgs.push("--token-file", tokenFile);
    if (!listen.length && (args.tls || tokenFile || allValues(rawArgv, "san").length)) {
      throw new PythondError("usage", "--tls, --token-file and --san only apply with --listen HOST:PORT");
    }
    if (args["idle-timeout"] !== undefined) {
      if (!(Number(args["idle-timeout"]) > 0)) throw new PythondError("usage", "--idle-timeout takes a number of seconds > 0");
      daemonArgs.push("--idle-timeout", args["idle-timeout"]);
    }
    const spec = daemonSpec({ system: p.system, runAs, daemonArgs });
    if (args.print) {
      line(renderService(spec, p).trimEnd());
      return;
    }
    const { path, next } = installService(spec, p);
    line(`wrote ${path}`);
    if (tokenFile) line(`token: kept in ${tokenFile} (created at the first start; clients need it)`);
    line("to start it now and at every boot:");
    for (const n of next) line(`  ${n}`);
  },
});

export const uninstallServiceCommand = defineCommand({
  meta: { name: "uninstall-service", description: "remove the service that install-service wrote (sessions keep running)" },
  args: { ...common, node: { type: "boolean", description: "the fleet node's service (pythond join --install-service)" } },
  run({ args }) {
    const p = placement(args);
    const spec = args.node ? nodeSpec({ system: p.system, joinArgs: [] }) : daemonSpec({ system: p.system, daemonArgs: [] });
    const { path, next } = uninstallService(spec, p);
    line(`removed ${path}`);
    line("then:");
    for (const n of next) line(`  ${n}`);
  },
});
