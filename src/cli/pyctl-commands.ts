/**
 * pyctl's (and `pythond`'s own) command table: synopsis, options, examples, completion kinds
 * (see src/cli/spec.ts for how to add a command). The citty commands of pyctl.ts take their
 * `args` from here (cittyArgs), so the table and what runs cannot disagree.
 */
import type { CmdSpec, OptSpec, RoleSpec } from "./spec.ts";

/** `pyctl start` = `pythond daemon`: the daemon's options. */
export const DAEMON_OPTIONS: Record<string, OptSpec> = {
  listen: { value: "HOST:PORT", help: "also listen on TCP (TLS unless loopback; port 0 picks one)", repeat: true },
  tls: { help: "use TLS on --listen even on loopback" },
  "show-token": { help: "print the token and the certificate fingerprint" },
  "token-file": { value: "FILE", help: "keep the token in FILE (0600) across restarts" },
  san: { value: "NAME", help: "extra certificate name or address (on first generation)", repeat: true },
  "local-tcp": { help: "local TCP mode: loopback TCP + token + daemon.json (Windows' way)" },
  "max-frame": { value: "MIB", help: "largest frame accepted, in MiB (default 64)" },
  "idle-timeout": { value: "S", help: "end sessions unused for S seconds (default: never)" },
  "log-level": { value: "LEVEL", help: "what goes to stderr: error, warn, info (default) or debug (every access line)" },
  quiet: { short: "q", help: "only warnings and errors on stderr (= --log-level warn); access.log keeps everything" },
};

const completion: CmdSpec = {
  name: "completion",
  args: "<bash|zsh|fish>",
  summary: "print a shell completion script (commands, options, proxy names)",
  examples: ["source <(pyctl completion bash)"],
  complete: ["shell"],
  min: 1,
  max: 1,
};

export const PYCTL: RoleSpec = {
  role: "pyctl",
  summary: "control the pythond daemon",
  commands: [
    {
      name: "start",
      summary: "run the daemon in the foreground (same as: pythond daemon)",
      options: DAEMON_OPTIONS,
      examples: ["pyctl start", "pyctl start --listen 0.0.0.0:7399 --show-token --token-file ~/.pythond/token"],
    },
    {
      name: "stop",
      summary: "stop the daemon and end its sessions (also over an authenticated remote connection)",
      options: { "keep-sessions": { help: "end only the daemon; sessions live on for the next one" } },
      examples: ["pyctl stop", "pyctl stop --keep-sessions"],
    },
    {
      name: "restart",
      summary: "restart the daemon in place: same process id and terminal, sessions live on, an upgraded binary is picked up",
      examples: ["pyctl restart"],
    },
    {
      name: "status",
      summary: "daemon endpoint and liveness (exit 1 if not alive)",
      options: { json: { help: "one JSON object, for scripts" } },
      examples: ["pyctl status", "pyctl status --json"],
    },
    {
      name: "cert",
      summary: "show (and on first use generate) this machine's TLS certificate",
      examples: ["pyctl cert"],
    },
    {
      name: "trust",
      args: "<cert.pem>",
      summary: "authorize a client certificate (like authorized_keys)",
      examples: ["pyctl trust client_cert.pem"],
      complete: ["file"],
      min: 1,
      max: 1,
    },
    {
      name: "pin",
      args: "<cert.pem>",
      summary: "pin a server certificate (like known_hosts)",
      examples: ["pyctl pin server_cert.pem"],
      complete: ["file"],
      min: 1,
      max: 1,
    },
    {
      name: "connect",
      args: "<name> <host:port> <token>",
      summary: "make <name> a proxy for the session <name> of a remote daemon (token - reads stdin)",
      options: { tls: { help: "use TLS (always on for non-loopback hosts)" } },
      examples: ["pyctl connect srv 10.0.0.5:7399 - --tls < token.txt"],
      complete: ["session", "text", "text"],
      min: 3,
      max: 3,
    },
    {
      name: "disconnect",
      args: "<name>",
      summary: "drop a remote proxy",
      examples: ["pyctl disconnect srv"],
      complete: ["session"],
      min: 1,
      max: 1,
    },
    {
      name: "help",
      args: "[command]",
      summary: "this overview, or the help of one command",
      examples: ["pyctl help start"],
      complete: ["command"],
      max: 1,
    },
    completion,
    {
      name: "__complete",
      args: "<words...>",
      summary: "completion candidates for the words typed so far (used by the completion scripts)",
      examples: ["pyctl __complete st"],
      max: -1,
      hidden: true,
    },
  ],
  footer: `Environment: PYTHOND_SOCK (local socket), PYTHOND_HOST/PYTHOND_TOKEN/PYTHOND_TLS (a remote daemon), NO_COLOR.`,
};

/** The binary's own name: the role dispatcher of src/main.ts. */
export const PYTHOND: RoleSpec = {
  role: "pythond",
  summary: "persistent Python sessions (sshd gives you a shell; pythond gives you Python)",
  commands: [
    {
      name: "daemon",
      summary: "run the daemon in the foreground (= pyctl start)",
      options: DAEMON_OPTIONS,
      examples: ["pythond daemon", "pythond daemon -q --listen 127.0.0.1:7399"],
    },
    {
      name: "pysh",
      args: "<command> ...",
      summary: "the session client (or call this binary as pysh): see pysh --help",
      examples: ['pythond pysh run work "1 + 1"'],
      max: -1,
    },
    {
      name: "pyctl",
      args: "<command> ...",
      summary: "daemon control (or call this binary as pyctl): see pyctl --help",
      examples: ["pythond pyctl status"],
      max: -1,
    },
    {
      name: "help",
      args: "[command]",
      summary: "this overview, or the help of one command",
      examples: ["pythond help daemon"],
      complete: ["command"],
      max: 1,
    },
  ],
  footer: "pythond --version prints the version.",
};

type CittyArg = { type: "string" | "boolean" | "positional"; description: string; required?: boolean; valueHint?: string };

/** citty `args` for a table entry (positionals named by `names`, in order). */
export function cittyArgs(c: CmdSpec, names: string[] = []): Record<string, CittyArg> {
  const out: Record<string, CittyArg> = {};
  names.forEach((n, i) => (out[n] = { type: "positional", description: n, required: i < (c.min ?? 0) }));
  for (const [k, o] of Object.entries(c.options ?? {})) {
    out[k] = o.value ? { type: "string", description: o.help, valueHint: o.value } : { type: "boolean", description: o.help };
  }
  return out;
}
