/**
 * The wire contract of the fleet's node services (issue 19): shell commands and jobs, PTY shells,
 * file transfer, port forwarding. Each runs in one tunnel (src/fleet/io/tunnel.ts) opened with an
 * IoSpec; what travels in it afterwards is listed per kind below (text = JSON records, binary =
 * bytes). Bump FLEET_IO_PROTOCOL when any of it changes.
 *
 * sh       node: {t:"started", id, pid, created}; binary [fd byte 1|2][bytes] as produced;
 *          {t:"skipped", fd, n} when kept output was lost before a resumed reader's offset;
 *          finally {t:"exit", ...JobResult}.  client: binary = stdin, {t:"eof"}, {t:"kill"}.
 *          `detach`: the node answers `started` and closes (the job runs on).
 * job      action "list" → {t:"jobs", jobs}; "info" → kept output (as sh) then {t:"info", job};
 *          "wait" → output from `from` until the end, then {t:"exit"}; "kill" → as wait, after
 *          ending the job (SIGTERM, SIGKILL 3 s later, to its whole group).
 * shell    action "list" → {t:"shells", shells}; "open" / "attach" → {t:"attached", id}, then
 *          binary = screen (the recent screen first on attach); client binary = keys,
 *          {t:"resize", cols, rows}; node {t:"exit", exit, code, signal} when the shell ends.
 *          The client closing the tunnel detaches (the shell lives on).
 * put      the node receives (src/fleet/files/wire.ts), `dest` relative to the node user's home.
 * get      the node sends `src` (relative to home).
 * forward  the node connects to host:port: {t:"open"} or {t:"err"}, then relayed bytes, {t:"eof"}.
 *
 * put/get with `local` (a client on the hub's own machine; the node never sees `local`): the hub
 * is that end of the transfer itself, reading or writing the client's file, so the bytes cross
 * one hop (hub to node) instead of two. After `OK io local` the hub sends the client only text:
 * {t:"progress", path, done, size} (if asked, at most every 100 ms), then {t:"done", ...summary}
 * or {t:"err", code, message}. `ERR not_local` before `OK io`: the hub cannot do it (a remote
 * client, or the hub does not see the client's file as the same file); the client then streams.
 * A hub older than `local` answers plain `OK io` and relays as ever (the node ignores `local`).
 */
export const FLEET_IO_PROTOCOL = 1;

/** The hub's answer to a put/get it does itself (`local`), where a relayed tunnel gets `OK io`. */
export const IO_LOCAL_OK = "OK io local";

/** Every spec may say how many bytes the node may have in flight towards the opener (its window). */
export interface IoCommon {
  window?: number;
}

export type IoSpec = IoCommon &
  (
  | {
      kind: "sh";
      command: string;
      cwd?: string;
      env?: Record<string, string>;
      timeoutMs?: number;
      stdin?: boolean;
      detach?: boolean;
      /** Sender-chosen job id (a resend finds the job it started). */
      id?: string;
    }
  | { kind: "job"; action: "list" | "info" | "wait" | "kill"; id?: string; from?: { out: number; err: number } }
  | {
      kind: "shell";
      action: "list" | "open" | "attach";
      id?: string;
      cwd?: string;
      cols?: number;
      rows?: number;
      readOnly?: boolean;
      lingerMs?: number;
    }
  | { kind: "put"; dest: string; resume?: boolean; local?: LocalEnd }
  | { kind: "get"; src: string; recursive?: boolean; local?: LocalEnd }
  | { kind: "forward"; host: string; port: number }
  );

/**
 * The client's end of a put/get, done by the hub (see above): `path` (absolute) is the source
 * (put) or the destination (get); `id` names a path the client stat'ed and what it found there
 * (device and inode, decimal), which the hub must find too: the same file, not merely the same
 * name (another machine, another mount namespace).
 */
export interface LocalEnd {
  path: string;
  id: { path: string; dev: string; ino: string };
  recursive?: boolean;
  resume?: boolean;
  progress?: boolean;
}

export type IoKind = IoSpec["kind"];
export const IO_KINDS: readonly IoKind[] = ["sh", "job", "shell", "put", "get", "forward"];
