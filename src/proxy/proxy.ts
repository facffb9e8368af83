/**
 * Remote proxies: `pyctl connect srv host:port <token> [--tls]` makes the name `srv` stand for the
 * session `srv` of another daemon, and `srv/<s>` (or `run srv <s>`, the original's form) for its
 * session `<s>`. Every session command naming one (run, fire, fork, poll, wait, status, vars,
 * complete, int, kill, new, attach, resize) is a ProxyTarget (src/daemon/target.ts): relayed there
 * with the remote session's name, and its replies — streamed output, binary terminal frames —
 * come back verbatim. The remote daemon sees an ordinary TLS client (pinned, with this machine's
 * client certificate and the token).
 *
 * A command borrows a virtual connection of the local client's own subprotocol (so replies need
 * no translation) on the proxy's one link (links.ts: one multiplexed WebSocket, kept up,
 * telling a remote restart with a new token from a network failure) for its whole duration.
 * What is relayed is credited back as the local client takes it, so a slow client slows the
 * remote cell, as it would locally.
 *
 * Proxies are remembered in <runtime>/proxies/<name>.json (0600, token included, like
 * daemon.json), so a restarted daemon keeps them; `pyctl stop` and `disconnect` forget them.
 */
import { mkdirSync, readdirSync, readFileSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import type { Request } from "../protocol/commands.ts";
import { PythondError } from "../protocol/errors.ts";
import { checkName } from "../protocol/names.ts";
import { decideTls, endpointLabel, parseHostPort, type RemoteEndpoint } from "../client/remote.ts";
import { writeFileAtomic } from "../tls/files.ts";
import type { AccessLog } from "../daemon/access-log.ts";
import type { ClientConn } from "../daemon/conn.ts";
import type { Status, Target, TargetSource } from "../daemon/target.ts";
import { ProxyLink, type Dial } from "./links.ts";
import { SessionRelay } from "./relay.ts";
import type { Registry } from "../sessions/registry.ts";

interface ProxyRecord {
  name: string;
  host: string;
  port: number;
  tls: boolean;
  token: string;
  created: string;
}

/** One remote proxy: the name here, the endpoint there, and the relaying of commands. */
export class RemoteProxy {
  readonly links: ProxyLink;
  readonly relay: SessionRelay;

  constructor(
    readonly name: string,
    readonly ep: RemoteEndpoint,
    say: (msg: string) => void,
    dial?: Dial,
  ) {
    this.links = new ProxyLink(name, ep, say, dial);
    this.relay = new SessionRelay(this.links, `remote '${name}'`);
  }

  /** "host:port tls", as `ls` and `OK connected` show it. */
  get label(): string {
    return this.links.label;
  }

  /** `ls` line: `  srv: -> host:port tls (remote)`, with the trouble when the link is down. */
  lsLine(): string {
    return `  ${this.name}: -> ${this.label} (remote${this.links.trouble()})`;
  }

  close(): void {
    this.links.close();
  }
}

/** Session `session` of the daemon behind a proxy, as the router's Target. */
export class ProxyTarget implements Target {
  readonly kind = "proxy" as const;

  constructor(
    private readonly proxies: Proxies,
    readonly proxy: RemoteProxy,
    readonly session: string,
    readonly name: string,
  ) {}

  run(conn: ClientConn, req: Request): Promise<Status> {
    return this.proxies.forward(conn, req, this);
  }

  request(conn: ClientConn, req: Request): Promise<Status> {
    return this.proxies.forward(conn, req, this);
  }

  attach(conn: ClientConn, req: Request): Promise<Status> {
    return this.proxies.forward(conn, req, this);
  }
}

/** All proxies of this daemon, by name, and their records on disk; the router's source of ProxyTargets. */
export class Proxies implements TargetSource {
  private proxies = new Map<string, RemoteProxy>();
  private readonly dir: string;

  constructor(
    runtime: string,
    private readonly log: AccessLog,
    private readonly say: (msg: string) => void,
  ) {
    this.dir = join(runtime, "proxies");
  }

  get(name: string): RemoteProxy | undefined {
    return this.proxies.get(name);
  }

  target(via: string, session: string, name: string): Target | undefined {
    const p = this.proxies.get(via);
    return p && new ProxyTarget(this, p, session, name);
  }

  list(): RemoteProxy[] {
    return [...this.proxies.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  /** `connect`: probe first (nothing changes if it fails), then replace any proxy of that name. */
  async connect(registry: Registry, name: string, hostPortSpec: string, token: string, tls: boolean, dial?: Dial): Promise<RemoteProxy> {
    checkName(name);
    if (registry.has(name)) {
      throw new PythondError("session_exists", `session '${name}' already exists here (local); choose another name for the remote`);
    }
    const { host, port } = parseHostPort(hostPortSpec, "connect");
    const ep: RemoteEndpoint = { host, port, tls: decideTls(host, tls), token };
    const proxy = new RemoteProxy(name, ep, this.say, dial);
    try {
      await proxy.links.probe();
    } catch (e) {
      proxy.close();
      const err = PythondError.from(e);
      throw new PythondError(err.code, `remote probe failed: ${err.message}`);
    }
    this.proxies.get(name)?.close();
    this.proxies.set(name, proxy);
    const rec: ProxyRecord = { name, host, port, tls: ep.tls, token, created: new Date().toISOString() };
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    writeFileAtomic(join(this.dir, `${name}.json`), JSON.stringify(rec) + "\n", 0o600);
    return proxy;
  }

  disconnect(registry: Registry, name: string): void {
    const p = this.proxies.get(name);
    if (!p) {
      if (registry.has(name)) throw new PythondError("usage", `'${name}' is local, use kill`);
      throw new PythondError("no_session", `no remote '${name}' (see: pysh ls)`);
    }
    p.close();
    this.proxies.delete(name);
    this.forget(name);
  }

  private forget(name: string): void {
    try {
      unlinkSync(join(this.dir, `${name}.json`));
    } catch {}
  }

  /** Re-creates the proxies of a previous run of this daemon; their links come up in the background. */
  adoptAll(registry: Registry): void {
    let files: string[] = [];
    try {
      files = readdirSync(this.dir).filter((f) => f.endsWith(".json"));
    } catch {
      return;
    }
    for (const f of files) {
      try {
        const rec = JSON.parse(readFileSync(join(this.dir, f), "utf8")) as ProxyRecord;
        checkName(rec.name);
        if (registry.has(rec.name) || this.proxies.has(rec.name)) continue;
        const ep: RemoteEndpoint = { host: rec.host, port: rec.port, tls: rec.tls, token: rec.token };
        const p = new RemoteProxy(rec.name, ep, this.say);
        this.proxies.set(rec.name, p);
        p.links.reconnect();
        this.say(`remote '${rec.name}' -> ${endpointLabel(ep)} restored`);
        this.log.write("session", { session: rec.name, status: "ok", event_detail: `remote proxy restored: ${endpointLabel(ep)}` });
      } catch {
        // a damaged record proxies nothing
      }
    }
  }

  /** Relays a session command for a proxy target; logs attachments like local ones. */
  async forward(conn: ClientConn, req: Request, t: ProxyTarget): Promise<Status> {
    const status = await t.proxy.relay.forward(conn, req, t.session, t.name);
    if (req.cmd === "attach" && status === "ok") {
      this.log.write("attach", { conn_id: conn.id, peer: conn.peer, session: t.name, status, remote: endpointLabel(t.proxy.ep) });
    }
    return status;
  }

  /** Closes every link; `forget` also removes the records (pyctl stop). */
  closeAll(forget: boolean): void {
    for (const p of this.proxies.values()) {
      p.close();
      if (forget) this.forget(p.name);
    }
    this.proxies.clear();
  }
}
