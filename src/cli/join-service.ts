/**
 * `pythond join … --install-service [--system] [--run-as USER] [--print]`: a service that runs
 * this node's own command line (src/service/ nodeSpec). The join token is left out of the
 * unit, which everyone on the machine can read: it is needed at the first join only, so the
 * node is joined once in the foreground (with --token) and the service carries on from there.
 */
import { PythondError } from "../protocol/errors.ts";
import { defaultFormat, defaultRunAs, installService, nodeSpec, renderService, type Placement } from "../service/install.ts";
import { line } from "./out.ts";

const OWN_FLAGS = new Set(["--install-service", "--system", "--user", "--print"]);

/** The node's arguments for the unit: our flags and the token taken out. */
export function nodeServiceArgs(argv: readonly string[]): { joinArgs: string[]; system: boolean; print: boolean; runAs?: string; droppedToken: boolean } {
  const joinArgs: string[] = [];
  let system = false, print = false, runAs: string | undefined, droppedToken = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--system") system = true;
    else if (a === "--print") print = true;
    else if (a === "--run-as") runAs = argv[++i];
    else if (a.startsWith("--run-as=")) runAs = a.slice(9);
    else if (a === "--token") (droppedToken = true), i++;
    else if (a.startsWith("--token=")) droppedToken = true;
    else if (!OWN_FLAGS.has(a)) joinArgs.push(a);
  }
  if (runAs !== undefined && !system) throw new PythondError("usage", "--run-as applies to --system services");
  return { joinArgs, system, print, runAs, droppedToken };
}

export function installNodeService(argv: readonly string[]): number {
  const o = nodeServiceArgs(argv);
  const p: Placement = { system: o.system, format: defaultFormat() };
  const spec = nodeSpec({ system: o.system, runAs: o.system ? o.runAs ?? defaultRunAs() : undefined, joinArgs: o.joinArgs });
  if (o.print) {
    line(renderService(spec, p).trimEnd());
    return 0;
  }
  const { path, next } = installService(spec, p);
  line(`wrote ${path}`);
  if (o.droppedToken) line("the join token is not in the unit (others can read it): join once in the foreground with --token first");
  line("to start it now and at every boot:");
  for (const n of next) line(`  ${n}`);
  return 0;
}
