/**
 * pyctl's fleet commands (imported lazily by pyctl.ts): `join-token` (make, --list, --revoke) and
 * `node forget`. Thin: parse, call one core function in src/fleet/hub, print.
 */
import { defineCommand } from "citty";
import { request } from "../client/api.ts";
import { Client } from "../client/connect.ts";
import { PythondError } from "../protocol/errors.ts";
import { okReply } from "../protocol/replies.ts";
import { checkNodeId, parseLabels } from "../protocol/fleet.ts";
import { allValues } from "./pyctl-remote.ts";
import { line } from "./out.ts";

let rawArgv: string[] = [];

/** pyctl.ts hands over the raw arguments (citty keeps only the last of repeated options). */
export function setRawArgv(argv: string[]): void {
  rawArgv = argv;
}

/** The running hub's URL for nodes, from its listener. */
async function hubUrl(): Promise<string> {
  const { hubUrlFromEndpoints } = await import("../fleet/hub/join-command.ts");
  let endpoints: string[] = [];
  try {
    const client = await Client.open({ remote: null });
    try {
      endpoints = (JSON.parse(await request(client, "hello")) as { listen?: string[] }).listen ?? [];
    } finally {
      client.close();
    }
  } catch (e) {
    throw new PythondError("daemon_unreachable", `${PythondError.from(e).message} (the hub must run, with --listen, to know its address; or pass --url wss://HOST:PORT)`);
  }
  const url = hubUrlFromEndpoints(endpoints);
  if (!url) throw new PythondError("usage", "the hub has no listener: start it with --listen 0.0.0.0:7399 (or pass --url wss://HOST:PORT)");
  return url;
}

export const joinToken = defineCommand({
  meta: { name: "join-token", description: "make a token for machines to join this hub as nodes (--list, --revoke ID)" },
  args: {
    ttl: { type: "string", description: "how long it works (30m, 24h, 7d; default 24h)" },
    uses: { type: "string", description: "how many machines may enroll with it (default: any number until it expires)" },
    label: { type: "string", description: "k=v label for nodes enrolled with it (repeatable)" },
    url: { type: "string", description: "the hub URL nodes dial (default: from the running hub's listener)" },
    list: { type: "boolean", description: "list the tokens" },
    revoke: { type: "string", description: "revoke the token with this id" },
  },
  async run({ args }) {
    const { TokenStore, parseTtl } = await import("../fleet/hub/tokens.ts");
    const jc = await import("../fleet/hub/join-command.ts");
    if (args.list) return line(jc.tokenTable(new TokenStore().read()));
    if (args.revoke !== undefined) {
      const r = await new TokenStore().revoke(args.revoke);
      return line(`revoked join token ${r.id}`);
    }
    const ttlMs = parseTtl(args.ttl ?? "24h");
    let uses: number | null = null;
    if (args.uses !== undefined) {
      uses = Number(args.uses);
      if (!Number.isInteger(uses) || uses < 1) throw new PythondError("usage", `--uses takes a whole number >= 1 (got ${JSON.stringify(args.uses)})`);
    }
    const labels = parseLabels(allValues(rawArgv, "label"));
    const url = args.url ?? (await hubUrl());
    if (!/^wss?:\/\//.test(url)) throw new PythondError("usage", `--url takes wss://HOST:PORT (got ${JSON.stringify(url)})`);
    let fingerprint: string | null = null;
    if (url.startsWith("wss://")) {
      const { ensureOwnCertificate } = await import("../tls/index.ts");
      fingerprint = (await ensureOwnCertificate()).fingerprint;
    }
    const r = await jc.makeJoinToken({ ttlMs, uses, labels, url, fingerprint });
    line(`# ${jc.describeToken(r.record)}`);
    line(r.command);
  },
});

const forget = defineCommand({
  meta: { name: "forget", description: "unbind a node id from its key (it must enroll again with a join token)" },
  args: { id: { type: "positional", required: true, description: "the node id" } },
  async run({ args }) {
    checkNodeId(args.id);
    let reply: string | null = null;
    try {
      const client = await Client.open({ remote: null });
      try {
        reply = await request(client, "node-forget", [args.id]);
      } finally {
        client.close();
      }
    } catch (e) {
      if (!(e instanceof PythondError) || e.code !== "daemon_unreachable") throw e;
    }
    if (reply !== null) return line(reply);
    const { forgetOnDisk } = await import("../fleet/hub/bindings.ts");
    if (!forgetOnDisk(args.id)) throw new PythondError("no_node", `no node '${args.id}' is enrolled here`);
    line(okReply(`forgot node ${args.id}`));
  },
});

export const node = defineCommand({
  meta: { name: "node", description: "fleet nodes of this hub (forget ID)" },
  subCommands: { forget },
});
