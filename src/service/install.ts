/**
 * Writing and removing the service definition (src/service/unit.ts) where systemd or launchd
 * looks for it, and the commands the user then runs. We never call systemctl/launchctl
 * ourselves: what gets enabled, and when, stays the user's call (and works without a running
 * service manager, as in containers and image builds).
 */
import { existsSync, lstatSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { homedir, userInfo } from "node:os";
import { dirname, join } from "node:path";
import { PythondError } from "../protocol/errors.ts";
import { launchdLabel, launchdPlist, systemdUnit, type ServiceSpec } from "./unit.ts";

export type ServiceFormat = "systemd" | "launchd";

export interface Placement {
  system: boolean;
  format: ServiceFormat;
  /** write here instead of the service manager's directory */
  dir?: string;
}

const MARK = "Written by pythond";

export const defaultFormat = (): ServiceFormat => (process.platform === "darwin" ? "launchd" : "systemd");

/** This binary's own path (compiled), as a service should start it. */
export function selfArgv(): string[] {
  const self = process.execPath.replace(/ \(deleted\)$/, ""); // see server.ts restart
  const compiled = Bun.main.startsWith("/$bunfs/") || Bun.main.startsWith("B:/~BUN/");
  return compiled ? [self] : [self, Bun.main];
}

function passwd(): string[][] {
  try {
    return readFileSync("/etc/passwd", "utf8").split("\n").map((l) => l.split(":"));
  } catch {
    return [];
  }
}

/** Who runs this, by uid (os.userInfo().username is "unknown" under Bun in some containers). */
export function currentUser(): string {
  const uid = String(process.getuid?.() ?? "");
  return passwd().find((f) => f[2] === uid)?.[0] || process.env.USER || process.env.LOGNAME || userInfo().username;
}

/** The account a system service runs as: the sudo caller, else whoever runs this. */
export function defaultRunAs(): string {
  return process.env.SUDO_USER || currentUser();
}

/** A user's home directory from /etc/passwd (for a system service run as someone else). */
export function homeOf(user: string): string {
  if (user === currentUser()) return process.env.HOME || homedir();
  const home = passwd().find((f) => f[0] === user)?.[5];
  if (home) return home;
  throw new PythondError("usage", `no such user: ${user}`);
}

export function servicePath(spec: ServiceSpec, p: Placement): string {
  const home = process.env.HOME || homedir();
  if (p.format === "launchd") {
    const dir = p.dir ?? (p.system ? "/Library/LaunchDaemons" : join(home, "Library", "LaunchAgents"));
    return join(dir, `${launchdLabel(spec)}.plist`);
  }
  const dir = p.dir ?? (p.system ? "/etc/systemd/system" : join(process.env.XDG_CONFIG_HOME || join(home, ".config"), "systemd", "user"));
  return join(dir, `${spec.name}.service`);
}

export function renderService(spec: ServiceSpec, p: Placement): string {
  if (p.format === "systemd") return systemdUnit(spec);
  const logDir = p.system ? "/Library/Logs" : join(process.env.HOME || homedir(), "Library", "Logs");
  return launchdPlist(spec, join(logDir, `${spec.name}.log`));
}

function ctl(p: Placement): string {
  return p.system ? "systemctl" : "systemctl --user";
}

/** Writes the definition (replacing only one we wrote) and returns what to run next. */
export function installService(spec: ServiceSpec, p: Placement): { path: string; next: string[] } {
  const path = servicePath(spec, p);
  if (existsSync(path) && !readFileSync(path, "utf8").includes(MARK)) {
    throw new PythondError("io", `${path} exists and was not written by pythond: not replacing it`);
  }
  try {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, renderService(spec, p), { mode: 0o644 });
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === "EACCES" ? " (a --system service needs root: sudo)" : "";
    throw new PythondError("io", `cannot write ${path}: ${(e as Error).message}${why}`);
  }
  if (p.format === "launchd") {
    return { path, next: [p.system ? `sudo launchctl bootstrap system ${path}` : `launchctl bootstrap gui/$(id -u) ${path}`] };
  }
  const unit = `${spec.name}.service`;
  const next = [`${ctl(p)} daemon-reload`, `${ctl(p)} enable --now ${unit}`];
  if (!p.system) next.push(`loginctl enable-linger ${currentUser()}   # keep it running while you are logged out`);
  const sock = spec.env?.PYTHOND_SOCK;
  if (sock) next.push(`export PYTHOND_SOCK=${sock}   # in ${spec.runAs ?? "the user"}'s shell, for pysh and pyctl`);
  return { path, next };
}

/** Removes the definition (and its enablement link) if pythond wrote it; returns what to run next. */
export function uninstallService(spec: ServiceSpec, p: Placement): { path: string; next: string[] } {
  const path = servicePath(spec, p);
  if (!existsSync(path)) throw new PythondError("io", `no service installed at ${path}`);
  if (!readFileSync(path, "utf8").includes(MARK)) throw new PythondError("io", `${path} was not written by pythond: not removing it`);
  if (p.format === "launchd") {
    const bootout = p.system ? `sudo launchctl bootout system/${launchdLabel(spec)}` : `launchctl bootout gui/$(id -u)/${launchdLabel(spec)}`;
    rmSync(path);
    return { path, next: [bootout] };
  }
  // What `systemctl disable` removes: the [Install] link.
  const wants = join(dirname(path), p.system ? "multi-user.target.wants" : "default.target.wants", `${spec.name}.service`);
  try {
    if (lstatSync(wants).isSymbolicLink()) rmSync(wants);
  } catch {}
  rmSync(path);
  const unit = `${spec.name}.service`;
  return { path, next: [`${ctl(p)} stop ${unit}   # the daemon only: sessions live on until pyctl stop`, `${ctl(p)} daemon-reload`] };
}

/** The daemon's service (pyctl install-service). */
export function daemonSpec(o: { system: boolean; runAs?: string; daemonArgs: string[] }): ServiceSpec {
  const system = o.system;
  return {
    name: "pythond",
    description: "pythond: persistent Python sessions",
    argv: [...selfArgv(), "daemon", ...o.daemonArgs],
    system,
    runAs: system ? o.runAs ?? defaultRunAs() : undefined,
    env: system ? { PYTHOND_SOCK: "/run/pythond/pythond.sock" } : undefined,
    removeWith: `pyctl uninstall-service${system ? " --system" : ""}`,
  };
}

/**
 * A fleet node's service (`pythond join ... --install-service`): the node's own command line,
 * less --install-service, run by this binary.
 */
export function nodeSpec(o: { system: boolean; runAs?: string; joinArgs: string[] }): ServiceSpec {
  return {
    name: "pythond-node",
    description: "pythond fleet node",
    argv: [...selfArgv(), "join", ...o.joinArgs.filter((a) => a !== "--install-service")],
    system: o.system,
    runAs: o.system ? o.runAs ?? defaultRunAs() : undefined,
    env: o.system ? { PYTHOND_SOCK: "/run/pythond-node/pythond.sock" } : undefined,
    removeWith: `pyctl uninstall-service --node${o.system ? " --system" : ""}`,
  };
}
