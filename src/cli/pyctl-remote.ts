/**
 * pyctl's remote-access pieces: the TCP/TLS flags of `start` (= `pythond daemon`), `connect` /
 * `disconnect` (remote proxies), and `status` against PYTHOND_HOST. Imported lazily by pyctl.ts.
 */
import { defineCommand } from "citty";
import { ReplyError, request } from "../client/api.ts";
import { Client } from "../client/connect.ts";
import type { RemoteOptions } from "../ingress/remote-setup.ts";
import { PythondError } from "../protocol/errors.ts";
import { checkName } from "../protocol/names.ts";
import { errLine, line } from "./out.ts";

/** Every value of a repeatable option (citty keeps only the last): `--x a --x=b --x c,d`. */
export function allValues(argv: readonly string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const w = argv[i]!;
    if (w === `--${name}` && argv[i + 1] !== undefined) out.push(argv[++i]!);
    else if (w.startsWith(`--${name}=`)) out.push(w.slice(name.length + 3));
  }
  return out.flatMap((v) => v.split(",")).map((v) => v.trim()).filter(Boolean);
}

/**
 * The RemoteOptions of `start`, or undefined when the daemon serves its Unix socket only.
 * Flags that only make sense with a listener are refused without one.
 */
export function startRemoteOptions(
  argv: readonly string[],
  flags: Readonly<Record<string, unknown>>,
): RemoteOptions | undefined {
  const listen = allValues(argv, "listen");
  const sans = allValues(argv, "san");
  const localTcp = flags["local-tcp"] === true || process.env.PYTHOND_LOCAL_TCP === "1" || process.platform === "win32";
  if (listen.length === 0 && !localTcp) {
    const stray = (["tls", "show-token", "token-file"] as const).filter((f) => flags[f]).map((f) => `--${f}`);
    if (sans.length) stray.push("--san");
    if (stray.length) throw new PythondError("usage", `${stray.join(", ")} only apply with --listen HOST:PORT`);
    return undefined;
  }
  return {
    listen,
    tls: flags.tls === true,
    showToken: flags["show-token"] === true,
    tokenFile: typeof flags["token-file"] === "string" ? flags["token-file"] : undefined,
    sans,
    localTcp,
  };
}

/**
 * The token of `connect`, from (in this order) the argument (`-`: the first line of stdin),
 * --token-file, PYTHOND_TOKEN. One given as the argument itself is visible to other local users
 * in `ps`: it is overwritten in our argv at once (argv-scrub.ts) and the user is told.
 */
async function readToken(arg: string | undefined, file: string | undefined): Promise<string> {
  if (arg === "-") {
    const first = (await Bun.stdin.text()).split(/\r?\n/)[0]?.trim() ?? "";
    if (!first) throw new PythondError("usage", "no token on stdin");
    return first;
  }
  if (arg) {
    const { scrubArgv } = await import("./argv-scrub.ts");
    scrubArgv(arg);
    errLine(
      "pyctl: warning: a token on the command line is visible to other local users (ps) while pyctl runs; " +
        "pass - (stdin), --token-file FILE or PYTHOND_TOKEN instead",
    );
    return arg;
  }
  if (file) {
    try {
      const first = (await Bun.file(file).text()).split(/\r?\n/)[0]?.trim() ?? "";
      if (first) return first;
    } catch (e) {
      throw new PythondError("usage", `cannot read --token-file ${file}: ${(e as Error).message}`);
    }
    throw new PythondError("usage", `--token-file ${file} is empty`);
  }
  const env = process.env.PYTHOND_TOKEN?.trim();
  if (env) return env;
  throw new PythondError("usage", "connect needs the remote's token: - (stdin), --token-file FILE or PYTHOND_TOKEN");
}

export const connect = defineCommand({
  meta: { name: "connect", description: "make <name> a proxy for the session <name> of a remote daemon" },
  args: {
    name: { type: "positional", required: true, description: "the name, here and there" },
    endpoint: { type: "positional", required: true, description: "HOST:PORT of the remote daemon" },
    token: { type: "positional", required: false, description: "- reads the token from stdin (or --token-file, PYTHOND_TOKEN)" },
    "token-file": { type: "string", description: "read the token from this file (its first line)" },
    tls: { type: "boolean", description: "use TLS (always on for non-loopback hosts)" },
  },
  async run({ args }) {
    checkName(args.name);
    if (/\s/.test(args.endpoint)) throw new PythondError("usage", `invalid endpoint: ${JSON.stringify(args.endpoint)}`);
    const token = await readToken(args.token as string | undefined, args["token-file"] as string | undefined);
    if (/\s/.test(token)) throw new PythondError("usage", "a token has no spaces");
    const client = await Client.open();
    try {
      line(await request(client, "connect", [args.name, args.endpoint, token, ...(args.tls ? ["--tls"] : [])]));
    } finally {
      client.close();
    }
  },
});

export const disconnect = defineCommand({
  meta: { name: "disconnect", description: "drop a remote proxy" },
  args: { name: { type: "positional", required: true, description: "the proxy's name" } },
  async run({ args }) {
    checkName(args.name);
    const client = await Client.open();
    try {
      line(await request(client, "disconnect", [args.name]));
    } finally {
      client.close();
    }
  },
});

/**
 * `pyctl status` with PYTHOND_HOST (or in local TCP mode): endpoint, liveness, and on stderr why
 * not; returns the exit code.
 */
export async function remoteStatus(json = false): Promise<number> {
  const { endpointLabel, remoteFromEnv } = await import("../client/remote.ts");
  let endpoint = "";
  try {
    const ep = remoteFromEnv()!;
    endpoint = endpointLabel(ep);
    if (!json) line(`endpoint: ${endpoint}`);
    const client = await Client.open({ remote: ep });
    const info = JSON.parse(await request(client, "hello")) as { version: string; pid: number; listen?: string[] };
    client.close();
    if (json) {
      line(JSON.stringify({ endpoint, alive: true, pid: info.pid, version: info.version, listen: info.listen ?? [] }));
      return 0;
    }
    line("alive: True");
    line(`pid: ${info.pid}`);
    line(`version: ${info.version}`);
    return 0;
  } catch (e) {
    line(json ? JSON.stringify({ endpoint, alive: false }) : "alive: False");
    errLine(e instanceof ReplyError ? e.reply : PythondError.from(e).toFrame());
    return 1;
  }
}
