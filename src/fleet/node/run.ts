/**
 * `pythond join`: a daemon like any other (its socket, its sessions, adoption after a restart)
 * that also dials its hub and serves it. Everything that can be wrong with the arguments is found
 * before the daemon starts; a hub that refuses the first join ends the process with its reason.
 */
import { runDaemon } from "../../daemon/server.ts";
import { socketPath } from "../../paths.ts";
import { PythondError } from "../../protocol/errors.ts";
import { normaliseFingerprint } from "../../tls/pem.ts";
import { fingerprintOfPem } from "../../tls/pem.ts";
import { NodeAgent } from "./agent.ts";
import { hubCertificate, readPinFile } from "./dial.ts";
import { parseHubUrl, type HubUrl } from "./hub-url.ts";
import { ensureNodeKey, readHubRecord, resolveNodeId } from "./identity.ts";
import { hubDispatch, NodeServer } from "./serve.ts";

export interface NodeOptions {
  url?: string;
  token?: string;
  fingerprint?: string;
  pin?: string;
  id?: string;
  labels: Record<string, string>;
  heartbeat: number;
  idleTimeout?: number;
  /** The arguments after `join`, for `pyctl restart` (without the token: see restartEnv). */
  argv: string[];
}

export async function runNode(o: NodeOptions): Promise<void> {
  const kept = readHubRecord();
  const spec = o.url ?? kept?.url;
  if (!spec) throw new PythondError("usage", "usage: pythond join wss://HUB:PORT --token T --fingerprint FP (pyctl join-token on the hub prints it)");
  const url: HubUrl = parseHubUrl(spec);
  let fingerprint: string | undefined;
  let hubPem: string | undefined;
  if (url.tls) {
    if (o.fingerprint) {
      try {
        fingerprint = normaliseFingerprint(o.fingerprint);
      } catch (e) {
        throw new PythondError("usage", `--fingerprint: ${(e as Error).message}`);
      }
    }
    if (o.pin) {
      hubPem = readPinFile(o.pin);
      fingerprint ??= fingerprintOfPem(hubPem);
    }
    if (!fingerprint && !o.url && kept) fingerprint = kept.fingerprint;
    if (!fingerprint) throw new PythondError("usage", `wss:// needs the hub's fingerprint (--fingerprint FP, printed by pyctl join-token on the hub) or its certificate (--pin cert.pem)`);
  } else if (o.fingerprint || o.pin) {
    throw new PythondError("usage", "--fingerprint and --pin are for wss:// (a plain ws:// link has no certificate to check)");
  }
  const { id } = resolveNodeId(o.id);
  const key = await ensureNodeKey(id);
  // The hub's certificate is checked before this daemon starts: a wrong fingerprint starts nothing.
  if (url.tls) hubPem = await hubCertificate({ url, id, key, labels: o.labels, heartbeat: o.heartbeat, fingerprint, hubPem });
  await runDaemon({
    socket: socketPath(),
    idleTimeout: o.idleTimeout,
    argv: o.argv,
    role: "join",
    restartEnv: o.token ? { PYTHOND_JOIN_TOKEN: o.token } : undefined,
    node: async (ctx, nextConnId, say) => {
      const server = new NodeServer(hubDispatch(ctx, `hub:${url.where}`, nextConnId));
      const agent = new NodeAgent({ url, id, key, token: o.token, labels: o.labels, heartbeat: o.heartbeat, fingerprint, hubPem }, server, say);
      say(`node '${id}' (key ${key.fingerprint.slice(0, 23)}…) dialing ${url.href}`);
      await agent.start();
      return agent;
    },
  });
}
