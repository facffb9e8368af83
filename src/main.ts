/**
 * One binary, four roles (DESIGN "One binary, four roles"): the role comes from the name it was
 * started as (the pysh / pyctl symlinks), else from the first argument (`pythond pysh run ...`).
 * Each role's CLI is imported lazily so that `pysh run` loads only what it needs. `pythond`'s own
 * commands are in the table of src/cli/pyctl-commands.ts (PYTHOND), like pysh's and pyctl's.
 */
import { basename } from "node:path";
import { VERSION } from "./protocol/version.ts";
import { versionLine } from "./build-info.ts";

/** `pythond`'s own commands; `onlyCheck`: returns -2 when argv is valid and not a help request. */
async function pythondMain(role: string, argv: string[], onlyCheck = false): Promise<number> {
  const { PYTHOND } = await import("./cli/pyctl-commands.ts");
  const spec = await import("./cli/spec.ts");
  const { errLine, line } = await import("./cli/out.ts");
  const { PythondError } = await import("./protocol/errors.ts");
  try {
    if (!role || role === "--help" || role === "-h") {
      line(spec.roleHelp(PYTHOND, VERSION));
      return role ? 0 : 1;
    }
    const c = spec.findCommand(PYTHOND, role);
    if (!c) throw spec.unknownCommand(PYTHOND, role);
    const a = spec.parseArgs("pythond", c, argv);
    if (a.help) {
      line(spec.commandHelp("pythond", c));
      return 0;
    }
    if (onlyCheck) return -2;
    const target = a.positional[0] && spec.findCommand(PYTHOND, a.positional[0]);
    if (a.positional[0] && !target) throw spec.unknownCommand(PYTHOND, a.positional[0]);
    line(target ? spec.commandHelp("pythond", target) : spec.roleHelp(PYTHOND, VERSION));
    return 0;
  } catch (e) {
    errLine(PythondError.from(e).toFrame());
    return 1;
  }
}

async function main(): Promise<number> {
  let argv = process.argv.slice(2);
  let role = basename(process.argv0 || "");
  if (role !== "pysh" && role !== "pyctl") {
    role = argv[0] ?? "";
    argv = argv.slice(1);
  }
  switch (role) {
    case "pysh":
      return (await import("./cli/pysh.ts")).main(argv);
    case "pyctl":
      return (await import("./cli/pyctl.ts")).main(argv);
    case "daemon": {
      const checked = await pythondMain(role, argv, true); // --help, unknown flags: as `pythond daemon`
      if (checked >= 0) return checked;
      (await import("./daemon/memcpy-tune.ts")).tuneMemcpy(); // may start this process again
      return (await import("./cli/pyctl.ts")).main(["start", ...argv]);
    }
    case "join": {
      const checked = await pythondMain(role, argv, true); // --help, unknown flags: as `pythond join`
      if (checked >= 0) return checked;
      (await import("./daemon/memcpy-tune.ts")).tuneMemcpy();
      return (await import("./cli/join.ts")).main(argv);
    }
    case "--version":
    case "-V":
      console.log(versionLine("pythond")); // not process.stdout: setting it up costs ~10 ms (BUN-NOTES)
      return 0;
    default:
      return pythondMain(role, argv);
  }
}

const code = await main();
if (code >= 0) process.exit(code);
