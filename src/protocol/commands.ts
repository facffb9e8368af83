/**
 * The command table of the wire contract: every command, its synopsis (for `ERR usage:`), how many
 * positional arguments it takes, the options it accepts, what it targets and who may call it.
 * Handlers live in the daemon (src/daemon/dispatch.ts) and are looked up by the same names, so the
 * two cannot drift.
 *
 * Targets (DESIGN "Routing"): `session` commands name a session as their first argument; the
 * router resolves it once to a Target (src/daemon/target.ts: a local session, a session behind a
 * proxy, a session on a node — `a/b` is session b of proxy or node a) and the handler gets that.
 * `via` says which of the Target's three doors the command goes through: `run` (streamed output
 * with credits), `request` (one reply), `attach` (terminal frames both ways). `none`: the daemon
 * itself answers.
 *
 * Callers: `local` (the Unix socket), `remote` (an authenticated TCP/TLS client), `hub` (a hub
 * asking a node over the node's link), `node` (a node, over its link to the hub: its own
 * registration and heartbeat only). The router checks the caller on every path, the plain-run
 * fast path included.
 */
import { PythondError } from "./errors.ts";
import type { Frame } from "./frame.ts";

/** Where a request came from (see above). */
export type Caller = "local" | "remote" | "hub" | "node";

/** Who may send the commands of a session or of a daemon's own, unless the table says otherwise. */
export const CLIENT_CALLERS: readonly Caller[] = ["local", "remote", "hub"];
/**
 * The daemon's control commands (stop, restart, connect, disconnect): its owner, on the local
 * socket or authenticated over TCP/TLS (full access once authenticated, as with SSH: such a client
 * can already run code as the daemon's user). Never a hub asking its node.
 */
const OWNER: readonly Caller[] = ["local", "remote"];

export type TargetKind = "session" | "none";
export type Via = "run" | "request" | "attach";

export interface CommandSpec {
  synopsis: string;
  /** Minimum and maximum positional arguments (max -1: unbounded). */
  min: number;
  max: number;
  /** Options that take a value (`--timeout 5` or `--timeout=5`). */
  valued?: readonly string[];
  /** Options that are switches (`--replace`). */
  switches?: readonly string[];
  /** Callers allowed; default CLIENT_CALLERS. */
  callers?: readonly Caller[];
  /** What the first argument names (default `none`). */
  target?: TargetKind;
  /** For session targets: which door of the Target. */
  via?: Via;
}

export const COMMANDS = {
  new: {
    synopsis: "new <name> [--replace] [--python PATH] [--cwd DIR] [--idle-timeout S]",
    min: 1,
    max: 1,
    valued: ["python", "cwd", "idle-timeout"],
    switches: ["replace"],
    target: "session",
    via: "request",
  },
  // run, fire, fork also take `<proxy> <session>` (the original's form; the router makes it `<proxy>/<session>`)
  run: { synopsis: "run <name>\\n<code>", min: 1, max: 2, valued: ["timeout"], target: "session", via: "run" },
  fire: { synopsis: "fire <name>\\n<code>", min: 1, max: 2, target: "session", via: "request" },
  fork: { synopsis: "fork <name>\\n<code>", min: 1, max: 2, target: "session", via: "request" },
  poll: { synopsis: "poll <name> [cell_id]", min: 1, max: 2, target: "session", via: "request" },
  wait: { synopsis: "wait <name> <cell_id> [--timeout S]", min: 2, max: 2, valued: ["timeout"], target: "session", via: "run" },
  int: { synopsis: "int <name> [cell_id]", min: 1, max: 2, target: "session", via: "request" },
  kill: { synopsis: "kill <name>", min: 1, max: 1, target: "session", via: "request" },
  ls: { synopsis: "ls [node]", min: 0, max: 1 },
  status: { synopsis: "status <name>", min: 1, max: 1, target: "session", via: "request" },
  vars: { synopsis: "vars <name>", min: 1, max: 1, target: "session", via: "request" },
  complete: { synopsis: "complete <name> <text>", min: 1, max: -1, target: "session", via: "request" },
  attach: { synopsis: "attach <name> [rows cols] [--read-only]", min: 1, max: 3, switches: ["read-only"], target: "session", via: "attach" },
  detach: { synopsis: "detach", min: 0, max: 0 },
  resize: { synopsis: "resize <name> <rows> <cols>", min: 3, max: 3, target: "session", via: "attach" },
  stop: { synopsis: "stop [--keep-sessions]", min: 0, max: 0, switches: ["keep-sessions"], callers: OWNER },
  restart: { synopsis: "restart", min: 0, max: 0, callers: OWNER },
  hello: { synopsis: "hello", min: 0, max: 0 },
  /** Remote proxies (src/proxy/proxy.ts): `<name>` then stands for the session of that name there, `<name>/<s>` for its session s. */
  connect: { synopsis: "connect <name> <host:port> <token> [--tls]", min: 3, max: 3, switches: ["tls"], callers: OWNER },
  disconnect: { synopsis: "disconnect <name>", min: 1, max: 1, callers: OWNER },
  /** Fleet (src/fleet/hub): the hub's nodes; never asked by a hub of a node (node management). */
  nodes: { synopsis: "nodes [--json]", min: 0, max: 0, switches: ["json"], callers: ["local", "remote"] },
  "node-forget": { synopsis: "node-forget <id>", min: 1, max: 1, callers: ["local"] },
  /**
   * Node services (src/protocol/fleet-io.ts): `io <node>\n<IoSpec JSON>` opens a tunnel to the
   * node (`OK io`, then binary units both ways until the tunnel ends); `fanout` runs `sh` on every
   * matching node from the hub (`--all` or `-l k=v,…`), JSON records back. Hub clients only: a
   * node never relays further.
   */
  io: { synopsis: "io <node>", min: 1, max: 1, callers: ["local", "remote"] },
  fanout: { synopsis: "fanout [--all] [--selector k=v,…] [--max-concurrency N] [--fail-fast]", min: 0, max: 0, valued: ["selector", "max-concurrency"], switches: ["all", "fail-fast"], callers: ["local", "remote"] },
} as const satisfies Record<string, CommandSpec>;

export type CommandName = keyof typeof COMMANDS;

/** A command's row, typed as the table's shape (a row may leave out `target`, `callers`...). */
export function specOf(cmd: CommandName): CommandSpec {
  return COMMANDS[cmd];
}

/** Attach frames: see replies.ts (kept importable from here). */
export { ATTACH } from "./replies.ts";

export interface Request {
  cmd: CommandName;
  args: string[];
  opts: Record<string, string | true>;
  body: string;
}

/** Validates a parsed frame against the table: unknown command, usage, options. */
export function toRequest(frame: Frame): Request {
  if (!Object.hasOwn(COMMANDS, frame.cmd)) throw new PythondError("unknown_command", `unknown: ${frame.cmd}`);
  const spec = specOf(frame.cmd as CommandName);
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
