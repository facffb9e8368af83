import { homedir } from "node:os";
import { join } from "node:path";

/** ~/.pythond/tls, from $HOME at call time (tests and `HOME=… pyctl` point it elsewhere). */
export function tlsDirPath(): string {
  return join(process.env.HOME || homedir(), ".pythond", "tls");
}
