/**
 * The command table of the wire contract: every command, its synopsis (for `ERR usage:`), how many
 * positional arguments it takes, the options it accepts, and who may call it. Handlers live in the
 * daemon (src/daemon/dispatch.ts) and are looked up by the same names, so the two cannot drift.
 */
import { PythondError } from "./errors.ts";
import type { Frame } from "./frame.ts";

/** Where a request came from: the local Unix socket, or an authenticated TCP/TLS client. */
export type Caller = "local" | "remote";

export interface CommandSpec {
  synopsis: string;
  /** Minimum and maximum positional arguments (max -1: unbounded). */
  min: number;
  max: number;
  /** Options that take a value (`--timeout 5` or `--timeout=5`). */
  valued?: readonly string[];
  /** Options that are switches (`--replace`). */
  switches?: readonly string[];
  /** Callers allowed; default: everyone authenticated. */
  callers?: readonly Caller[];
}

export const COMMANDS = {
  new: {
    synopsis: "new <name> [--replace] [--python PATH] [--cwd DIR] [--idle-timeout S]",
    min: 1,
    max: 1,
    valued: ["python", "cwd", "idle-timeout"],
    switches: ["replace"],
  },
  run: { synopsis: "run <name>\\n<code>", min: 1, max: 1, valued: ["timeout"] },
  fire: { synopsis: "fire <name>\\n<code>", min: 1, max: 1 },
  fork: { synopsis: "fork <name>\\n<code>", min: 1, max: 1 },
  poll: { synopsis: "poll <name> [cell_id]", min: 1, max: 2 },
  wait: { synopsis: "wait <name> <cell_id> [--timeout S]", min: 2, max: 2, valued: ["timeout"] },
  int: { synopsis: "int <name> [cell_id]", min: 1, max: 2 },
  kill: { synopsis: "kill <name>", min: 1, max: 1 },
  ls: { synopsis: "ls", min: 0, max: 0 },
  status: { synopsis: "status <name>", min: 1, max: 1 },
  vars: { synopsis: "vars <name>", min: 1, max: 1 },
  complete: { synopsis: "complete <name> <text>", min: 1, max: -1 },
  attach: { synopsis: "attach <name> [rows cols] [--read-only]", min: 1, max: 3, switches: ["read-only"] },
  detach: { synopsis: "detach", min: 0, max: 0 },
  resize: { synopsis: "resize <name> <rows> <cols>", min: 3, max: 3 },
  stop: { synopsis: "stop [--keep-sessions]", min: 0, max: 0, switches: ["keep-sessions"] },
  restart: { synopsis: "restart", min: 0, max: 0 },
  hello: { synopsis: "hello", min: 0, max: 0 },
  /** Remote proxies (src/daemon/proxy.ts): `<name>` then stands for the session of that name there. */
  connect: { synopsis: "connect <name> <host:port> <token> [--tls]", min: 3, max: 3, switches: ["tls"] },
  disconnect: { synopsis: "disconnect <name>", min: 1, max: 1 },
} as const satisfies Record<string, CommandSpec>;

export type CommandName = keyof typeof COMMANDS;

/**
 * Attach: after `OK attached`, binary frames are raw terminal bytes both ways until `OK detached`
 * (the reply to `detach`, or sent by the daemon when the REPL gets Ctrl-D) or
 * `ERR detached from session '<name>': <why>` (the session ended). `resize` replies `OK resized <rows>x<cols>`. The detach key is the client's.
 */
export const ATTACH = { attached: "OK attached", detached: "OK detached", detachKey: 0x1d } as const;

export interface Request {
  cmd: CommandName;
  args: string[];
  opts: Record<string, string | true>;
  body: string;
}

/** Validates a parsed frame against the table: unknown command, usage, options. */
export function toRequest(frame: Frame): Request {
  const spec: CommandSpec | undefined = (COMMANDS as Record<string, CommandSpec>)[frame.cmd];
  if (!spec || !Object.hasOwn(COMMANDS, frame.cmd)) throw new PythondError("unknown_command", `unknown: ${frame.cmd}`);
  const args: string[] = [];
  const opts: Record<string, string | true> = {};
  const words = frame.args;
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (w.startsWith("--") && w.length > 2 && frame.cmd !== "complete") {
      const eq = w.indexOf("=");
      const key = eq < 0 ? w.slice(2) : w.slice(2, eq);
      if (spec.switches?.includes(key)) opts[key] = true;
      else if (spec.valued?.includes(key)) {
        const value = eq < 0 ? words[++i] : w.slice(eq + 1);
        if (value === undefined || value === "") throw new PythondError("usage", `usage: ${spec.synopsis}`);
        opts[key] = value;
      } else throw new PythondError("usage", `usage: ${spec.synopsis} (unknown option --${key})`);
    } else args.push(w);
  }
  if (args.length < spec.min) throw new PythondError("usage", `usage: ${spec.synopsis}`);
  if (spec.max >= 0 && args.length > spec.max) {
    if (frame.cmd === "new") {
      throw new PythondError("usage", `new takes a name only (got extra: ${args.slice(1).join(" ")})`);
    }
    throw new PythondError("usage", `usage: ${spec.synopsis}`);
  }
  return { cmd: frame.cmd as CommandName, args, opts, body: frame.body };
}
