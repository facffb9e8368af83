import { join } from "node:path";
import { homeBase } from "../paths.ts";

/** ~/.pythond/tls, from $HOME at call time (tests and `HOME=… pyctl` point it elsewhere). */
export function tlsDirPath(): string {
  return join(homeBase(), "tls");
}
