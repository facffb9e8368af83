/** pysh attach: filled in by the attach work. */
import { errLine } from "./out.ts";

export async function attachMain(_argv: string[]): Promise<number> {
  errLine("ERR attach is not available yet");
  return 1;
}
