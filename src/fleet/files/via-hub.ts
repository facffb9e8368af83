/**
 * The client's side of a put/get the hub does itself (src/fleet/io/hub-files.ts): when the daemon
 * is this machine's own, pysh names its file (absolute path, and the device and inode it found
 * there) instead of streaming it, and shows the hub's progress. Anything that would fail on the
 * client's side (no such file, a directory without -r, unreadable, `-`) is left to the streamed
 * path, whose messages say it as before; so is a hub that cannot (ERR not_local, or an older hub).
 * PYTHOND_FILES_DIRECT=0 always streams.
 */
import { accessSync, constants, statSync, type BigIntStats } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { Client } from "../../client/connect.ts";
import { ReplyError } from "../../client/api.ts";
import { PythondError, type ErrorCode } from "../../protocol/errors.ts";
import { IO_LOCAL_OK, type IoSpec, type LocalEnd } from "../../protocol/fleet-io.ts";
import { isError } from "../../protocol/replies.ts";

export interface ViaHubSummary {
  target: string;
  files: number;
  bytes: number;
  resumed: number;
  resumedFiles: string[];
}

type Progress = (path: string, done: number, size: number | null) => void;

/** The stat of p, or null; also null without an inode number (some file systems: no identity to check). */
function statBig(p: string): BigIntStats | null {
  try {
    const st = statSync(p, { bigint: true });
    return st.ino === 0n ? null : st;
  } catch {
    return null;
  }
}

const id = (path: string, st: BigIntStats) => ({ path, dev: String(st.dev), ino: String(st.ino) });

/** The local end of a put, or null when the streamed path should handle (and word) it. */
export function localSource(src: string, recursive: boolean, progress: boolean): LocalEnd | null {
  if (src === "-" || process.env.PYTHOND_FILES_DIRECT === "0") return null;
  const path = resolve(src);
  const st = statBig(path);
  if (!st || !(st.isFile() || (st.isDirectory() && recursive))) return null;
  try {
    accessSync(path, constants.R_OK);
  } catch {
    return null;
  }
  return { path, id: id(path, st), recursive, progress };
}

/** The local end of a get: the destination, identified by itself or, when new, its directory. */
export function localDest(dest: string, resume: boolean, progress: boolean): LocalEnd | null {
  if (dest === "-" || process.env.PYTHOND_FILES_DIRECT === "0") return null;
  const path = resolve(dest);
  const st = statBig(path);
  if (st) return { path, id: id(path, st), resume, progress };
  const parent = statBig(dirname(path));
  return parent?.isDirectory() ? { path, id: id(dirname(path), parent), resume, progress } : null;
}

/** Paths in the hub's words as the user wrote them (a relative path came back absolute). */
function asGiven(given: string, text: string): string {
  return isAbsolute(given) ? text : text.split(`${process.cwd()}/`).join("");
}

/**
 * Has the hub do the transfer; null when it cannot (then stream). `given` is the local path as
 * the user wrote it.
 */
export async function viaHub(node: string, spec: IoSpec & { kind: "put" | "get" }, given: string, onProgress: Progress): Promise<ViaHubSummary | null> {
  const client = await Client.open();
  try {
    client.send(`io ${node}\n${JSON.stringify(spec)}`);
    const first = await client.nextText();
    if (first !== IO_LOCAL_OK) {
      if (!isError(first)) return null; // a hub older than `local`: it would relay; stream instead
      const e = new ReplyError(first, client.codes);
      if (e.code === "not_local") return null;
      throw e;
    }
    for (;;) {
      const m = JSON.parse(await client.nextText()) as { t: string } & Record<string, unknown>;
      if (m.t === "progress") onProgress(asGiven(given, String(m.path)), Number(m.done), m.size === null ? null : Number(m.size));
      else if (m.t === "err") throw new PythondError(m.code as ErrorCode, asGiven(given, String(m.message)));
      else if (m.t === "done") {
        const s = m as unknown as ViaHubSummary;
        return { ...s, target: spec.kind === "get" ? asGiven(given, s.target) : s.target, resumedFiles: s.resumedFiles.map((f) => asGiven(given, f)) };
      }
    }
  } finally {
    client.close();
  }
}
