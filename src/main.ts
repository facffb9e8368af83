/**
 * One binary, four roles (DESIGN "One binary, four roles"): the role comes from the name it was
 * started as (the pysh / pyctl symlinks), else from the first argument (`pythond pysh run ...`).
 * Each role's CLI is imported lazily so that `pysh run` loads only what it needs.
 */
import { basename } from "node:path";
import { VERSION } from "./protocol/version.ts";
import { versionLine } from "./build-info.ts";

const HELP = `pythond ${VERSION} -- persistent Python sessions (sshd gives you a shell; pythond gives you Python)

  pythond daemon [--listen HOST:PORT] [--tls]   run the daemon in the foreground (= pyctl start)
  pythond join wss://HUB:PORT --token T --fingerprint FP   join a hub as a node (fleet)
  pythond pysh ...                              the session client (or call this binary as pysh)
  pythond pyctl ...                             daemon control (or call this binary as pyctl)
  pythond --version
`;

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
    case "daemon":
      return (await import("./cli/pyctl.ts")).main(["start", ...argv]);
    case "join":
      return (await import("./cli/join.ts")).main(argv);
    case "--version":
    case "-V":
      console.log(versionLine("pythond")); // not process.stdout: setting it up costs ~10 ms (BUN-NOTES)
      return 0;
    default:
      console.log(HELP.slice(0, -1));
      return role === "--help" || role === "-h" ? 0 : 1;
  }
}

const code = await main();
if (code >= 0) process.exit(code);
