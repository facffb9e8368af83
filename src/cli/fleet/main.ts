/** The fleet commands of pysh, each in its own file (imported only when it runs). */
export async function fleetMain(cmd: string, argv: string[]): Promise<number> {
  switch (cmd) {
    case "sh":
      return (await import("./sh.ts")).shMain(argv);
    case "job":
      return (await import("./sh.ts")).jobMain(argv);
    case "shell":
      return (await import("./shell.ts")).shellMain(argv);
    case "put":
      return (await import("./files.ts")).putMain(argv);
    case "get":
      return (await import("./files.ts")).getMain(argv);
    default:
      return (await import("./forward.ts")).forwardMain(argv);
  }
}
