/**
 * Service definitions for the daemon (`pyctl install-service`) and a fleet node (`pythond join
 * ... --install-service`): a systemd unit, or a launchd plist on macOS. Pure text from a spec;
 * writing and removing them is src/service/install.ts.
 *
 * What matters for pythond under a service manager:
 *  - only the daemon is stopped (systemd KillMode=process, launchd AbandonProcessGroup): each
 *    session is its own process and outlives the daemon; the next one adopts it, so
 *    `systemctl restart` keeps every session (README "Sessions survive the daemon");
 *  - restart on failure only: `pyctl stop` exits 0 and stays stopped; `pyctl restart` makes the
 *    daemon exit 75 (PYTHOND_SUPERVISED=1) so that the manager, not the daemon, starts the new one;
 *  - hardening limited to what a Python session never needs: no PrivateTmp (users share /tmp
 *    with their sessions), no MemoryDenyWriteExecute (Bun's JIT, numba), no ProtectHome.
 */
import { VERSION } from "../protocol/version.ts";

export interface ServiceSpec {
  /** unit / label stem: "pythond" (daemon) or "pythond-node" (fleet node) */
  name: string;
  description: string;
  /** absolute path of the binary, then its arguments */
  argv: string[];
  /** system-wide (root's service manager) rather than the user's */
  system: boolean;
  /** system services: the account the daemon and its sessions run as */
  runAs?: string;
  /** extra environment for the process */
  env?: Record<string, string>;
  /** the command that removes it again, for the header comment */
  removeWith: string;
}

/** systemd's quoting for one ExecStart word ('%' is a specifier, '$' an expansion). */
/** The spec's environment plus PYTHOND_SUPERVISED=1 (src/daemon/server.ts restart). */
function env(s: ServiceSpec): Record<string, string> {
  return { PYTHOND_SUPERVISED: "1", ...s.env };
}

export function systemdQuote(word: string): string {
  const escaped = word.replace(/%/g, "%%").replace(/\$/g, "$$$$");
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(escaped)) return escaped;
  return `"${escaped.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

export function systemdUnit(s: ServiceSpec): string {
  const lines = [
    `# Written by pythond ${VERSION} (${s.removeWith} removes it).`,
    "[Unit]",
    `Description=${s.description}`,
    "After=network.target",
    "",
    "[Service]",
    "Type=simple",
    `ExecStart=${s.argv.map(systemdQuote).join(" ")}`,
    ...Object.entries(env(s)).map(([k, v]) => `Environment=${systemdQuote(`${k}=${v}`)}`),
    "# Stop only the daemon: sessions are processes of their own and the next daemon adopts them,",
    "# so `systemctl restart` keeps every session.",
    "KillMode=process",
    "Restart=on-failure",
    "RestartSec=1",
    "# `pyctl restart` (PYTHOND_SUPERVISED=1) exits 75 for systemd to start the new daemon.",
    "RestartForceExitStatus=75",
    "# Hardening that no Python session needs to do without (no PrivateTmp: sessions share /tmp",
    "# with you; no MemoryDenyWriteExecute: JITs). NoNewPrivileges: sudo and setuid programs fail",
    "# inside sessions; delete the line if yours need them.",
    "NoNewPrivileges=yes",
    "LockPersonality=yes",
    "RestrictRealtime=yes",
    "RestrictSUIDSGID=yes",
  ];
  if (s.system) {
    // Namespacing options: system units only (in user units they need user namespaces).
    lines.push(
      "ProtectKernelTunables=yes",
      "ProtectKernelModules=yes",
      "ProtectKernelLogs=yes",
      "ProtectControlGroups=yes",
      "ProtectClock=yes",
      "ProtectHostname=yes",
    );
    if (s.runAs && s.runAs !== "root") lines.push("ProtectSystem=full");
    if (s.runAs) lines.push(`User=${s.runAs}`);
    // The socket: /run/<name>, kept across restarts (the sessions' sockets live beside it).
    lines.push(`RuntimeDirectory=${s.name}`, "RuntimeDirectoryMode=0700", "RuntimeDirectoryPreserve=yes", "WorkingDirectory=~");
  }
  lines.push("", "[Install]", `WantedBy=${s.system ? "multi-user.target" : "default.target"}`, "");
  return lines.join("\n");
}

const xml = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

export function launchdLabel(s: ServiceSpec): string {
  return `dev.pythond.${s.name === "pythond" ? "daemon" : s.name.replace(/^pythond-/, "")}`;
}

/** A launchd plist: KeepAlive on failure only, AbandonProcessGroup so sessions outlive the daemon. */
export function launchdPlist(s: ServiceSpec, logFile: string): string {
  const vars = Object.entries(env(s));
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">',
    `<!-- Written by pythond ${VERSION} (${xml(s.removeWith)} removes it). -->`,
    '<plist version="1.0">',
    "<dict>",
    `  <key>Label</key><string>${xml(launchdLabel(s))}</string>`,
    "  <key>ProgramArguments</key>",
    "  <array>",
    ...s.argv.map((a) => `    <string>${xml(a)}</string>`),
    "  </array>",
    ...(s.system && s.runAs ? [`  <key>UserName</key><string>${xml(s.runAs)}</string>`] : []),
    ...(vars.length
      ? ["  <key>EnvironmentVariables</key>", "  <dict>", ...vars.map(([k, v]) => `    <key>${xml(k)}</key><string>${xml(v)}</string>`), "  </dict>"]
      : []),
    "  <key>RunAtLoad</key><true/>",
    "  <!-- restart after a crash, not after pyctl stop -->",
    "  <key>KeepAlive</key>",
    "  <dict><key>SuccessfulExit</key><false/></dict>",
    "  <!-- stop only the daemon: sessions outlive it and the next daemon adopts them -->",
    "  <key>AbandonProcessGroup</key><true/>",
    "  <!-- pyctl restart exits 75 (PYTHOND_SUPERVISED): start the new daemon within a second -->",
    "  <key>ThrottleInterval</key><integer>1</integer>",
    `  <key>StandardErrorPath</key><string>${xml(logFile)}</string>`,
    "</dict>",
    "</plist>",
    "",
  ].join("\n");
}
