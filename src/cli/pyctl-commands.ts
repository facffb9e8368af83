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
  heartbeat: { value: "S", help: "fleet hub: seconds between heartbeats to each node (default 10)" },
  quiet: { short: "q", help: "only warnings and errors on stderr (= --log-level warn); access.log keeps everything" },
  "max-inflight": { value: "MIB", help: "large request bodies in flight at once, all clients, in MiB (default 128)" },
};

/** `pythond join`: a node's options (src/cli/join.ts takes its citty args from here). */
export const JOIN_OPTIONS: Record<string, OptSpec> = {
  token: { value: "T", help: "join token (pyctl join-token on the hub; or PYTHOND_JOIN_TOKEN); needed at the first join only" },
  fingerprint: { value: "FP", help: "the hub certificate's SHA-256 fingerprint (printed by pyctl join-token)" },
  pin: { value: "FILE", help: "the hub's certificate file, instead of --fingerprint" },
  id: { value: "ID", help: "this node's id (default: kept from before, else generated once)" },
  label: { value: "K=V", help: "a label of this node (repeatable)", repeat: true },
  heartbeat: { value: "S", help: "seconds between heartbeats (default 10; offline after 3 missed)" },
  "server-url": { value: "URL", help: "the seed's spelling of the hub URL" },
  "daemon-id": { value: "ID", help: "the seed's spelling of --id" },
  "idle-timeout": { value: "S", help: "end sessions unused for S seconds (default: never)" },
  "install-service": { help: "write a systemd unit (launchd plist) that runs this node with these arguments, less the token" },
  system: { help: "with --install-service: a system service (root), instead of your user's" },
  "run-as": { value: "USER", help: "with --install-service --system: the user the node runs as" },
  print: { help: "with --install-service: print the unit, write nothing" },
};

const SERVICE_PLACEMENT: Record<string, OptSpec> = {
  user: { help: "the user's own service manager (default)" },
  system: { help: "system-wide (needs root); runs as --run-as" },
  format: { value: "FMT", help: "systemd or launchd (default: this OS's)" },
  dir: { value: "DIR", help: "write into this directory instead of the service manager's" },
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
      args: "<name> <host:port> [<token>|-]",
      summary: "make <name> a proxy for the session <name> of a remote daemon (token: - reads stdin, or --token-file, or PYTHOND_TOKEN)",
      options: {
        tls: { help: "use TLS (always on for non-loopback hosts)" },
        "token-file": { value: "FILE", help: "read the token from this file (its first line)" },
      },
      examples: ["pyctl connect srv 10.0.0.5:7399 --token-file token.txt --tls", "pyctl connect srv 10.0.0.5:7399 - --tls < token.txt"],
      complete: ["session", "text", "text"],
      min: 2,
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
      name: "join-token",
      summary: "make a token for machines to join this hub as nodes (prints the pythond join command); --list, --revoke ID",
      options: {
        ttl: { value: "TTL", help: "how long it works (30m, 24h, 7d; default 24h)" },
        uses: { value: "N", help: "how many machines may enroll with it (default: any number until it expires)" },
        label: { value: "K=V", help: "a label for nodes enrolled with it", repeat: true },
        url: { value: "URL", help: "the hub URL nodes dial (default: from the running hub's listener)" },
        list: { help: "list the tokens" },
        revoke: { value: "ID", help: "revoke the token with this id" },
      },
      examples: ["pyctl join-token --ttl 1h --uses 3 --label gpu=1", "pyctl join-token --list", "pyctl join-token --revoke t3"],
    },
    {
      name: "node",
      args: "forget <id>",
      summary: "fleet nodes of this hub: forget unbinds a node id from its key (it must enroll again with a join token)",
      examples: ["pyctl node forget worker-1"],
      complete: ["subcommand", "node"],
      subcommands: ["forget"],
      min: 2,
      max: 2,
    },
    {
      name: "install-service",
      summary: "write a service unit (systemd; launchd on macOS) that runs the daemon, and print the commands to enable it",
      options: {
        ...SERVICE_PLACEMENT,
        listen: { value: "HOST:PORT", help: "also listen on HOST:PORT (repeatable; as pyctl start)", repeat: true },
        tls: { help: "TLS on --listen (always on for non-loopback)" },
        "token-file": { value: "FILE", help: "token kept here (default with a non-loopback --listen: ~/.pythond/service.token)" },
        san: { value: "NAME", help: "extra certificate name (repeatable)", repeat: true },
        "idle-timeout": { value: "S", help: "end sessions unused for this many seconds" },
        "run-as": { value: "USER", help: "--system: the account to run as (default: the sudo caller, else you)" },
        print: { help: "print the unit and write nothing" },
      },
      examples: ["pyctl install-service --user", "pyctl install-service --system --listen 0.0.0.0:7399 --print"],
      max: 0,
    },
    {
      name: "uninstall-service",
      summary: "remove a service unit written by install-service (and nothing else)",
      options: { ...SERVICE_PLACEMENT, node: { help: "the fleet node's service (pythond join --install-service)" } },
      examples: ["pyctl uninstall-service --user", "pyctl uninstall-service --node"],
      max: 0,
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
      name: "join",
      args: "[wss://HUB:PORT]",
      summary: "join a hub as a node: dial out to it and serve its requests (no port opened here); no URL: the hub joined before",
      options: JOIN_OPTIONS,
      examples: [
        "pythond join wss://hub.example:7399 --token T --fingerprint SHA256:… --label gpu=1",
        "pythond join --server-url wss://hub.example:7399 --daemon-id worker-1 --token T --pin hub_cert.pem",
      ],
      complete: ["text"],
      max: 1,
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
