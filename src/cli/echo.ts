/**
 * Operator echo (the seed: "Interactive pysh run/fire/fork also echoes submitted code, errors, and
 * raw run output to the client terminal's stderr. That is operator feedback, not daemon access
 * logging."). When stderr is a terminal, the submitted code is shown there in a short, marked form
 * (dim unless NO_COLOR or TERM=dumb); when stdout is not that same terminal (an agent captures
 * stdout while a human watches), the output goes there too (errors already do). Never when stderr
 * is not a terminal. PYTHOND_ECHO=0|1 overrides the terminal check.
 */
import { fstatSync } from "node:fs";
import { stderr } from "./out.ts";

/**
 * isatty(fd) without loading node:tty on the agent's path: it brings Node's stream and socket
 * modules (~3-4 ms of pysh's ~10 ms start-up). A pipe or a file is not a character device, so only
 * a terminal (or /dev/null) pays for the exact check.
 */
export function isTerminal(fd: number): boolean {
  try {
    if (!fstatSync(fd).isCharacterDevice()) return false;
  } catch {
    return false;
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require("node:tty") as typeof import("node:tty")).isatty(fd);
}

const MAX_LINES = 3;
const MAX_COLS = 160;

export interface Echo {
  code(cmd: string, name: string, code: string): void;
  output(chunk: Uint8Array | string): void;
}

function sameTerminal(): boolean {
  if (!isTerminal(1)) return false;
  try {
    return fstatSync(1).rdev === fstatSync(2).rdev;
  } catch {
    return false;
  }
}

function plain(): boolean {
  return Boolean(process.env.NO_COLOR) || process.env.TERM === "dumb";
}

/** The echo for this process, or null when there is nobody to show it to. */
export function echoFor(): Echo | null {
  const env = process.env.PYTHOND_ECHO;
  if (env === "0" || (env !== "1" && !isTerminal(2))) return null;
  const showOutput = !sameTerminal();
  const [dim, end] = plain() ? ["", ""] : ["\x1b[2m", "\x1b[0m"];
  const dec = new TextDecoder();
  return {
    code(cmd, name, code) {
      const lines = code.replace(/\n+$/, "").split("\n");
      const shown = lines.slice(0, MAX_LINES).map((l) => (l.length > MAX_COLS ? l.slice(0, MAX_COLS - 1) + "…" : l));
      const more = lines.length > MAX_LINES ? [`… (${lines.length - MAX_LINES} more lines)`] : [];
      const text = [`» ${cmd} ${name}: ${shown[0] ?? ""}`, ...shown.slice(1).map((l) => `  ${l}`), ...more.map((l) => `  ${l}`)];
      stderr(`${dim}${text.join("\n")}${end}\n`);
    },
    output(chunk) {
      if (!showOutput) return;
      stderr(typeof chunk === "string" ? chunk : dec.decode(chunk, { stream: true }));
    },
  };
}
