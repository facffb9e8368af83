/**
 * Files on nodes for the library, with pysh put/get's engine (src/fleet/files/): chunked with flow
 * control, written beside the target as a part file, SHA-256 checked, then renamed (atomic: a
 * reader never sees half a file), resumed after an interruption. Remote paths are relative to the
 * node user's home. `readFile` / `writeFile` move bytes in memory instead of local files.
 */
import { basename } from "node:path";
import { receiveTree } from "../fleet/files/receive.ts";
import { sendTree } from "../fleet/files/send.ts";
import { control, recvControl, send } from "../fleet/files/wire.ts";
import { openTunnel } from "../fleet/io/client-tunnel.ts";
import { PythondError } from "../protocol/errors.ts";
import { checkNodeId } from "../protocol/fleet.ts";
import type { IoSpec } from "../protocol/fleet-io.ts";
import { chunksOf, type Opener } from "./fleet.ts";
import { Kept, type TransferSummary } from "./fleet-results.ts";

export interface TransferOptions {
  /** Directories, recursively (as cp -r). */
  recursive?: boolean;
  /** Go on from what an interrupted transfer of the same source left (default true). */
  resume?: boolean;
}

async function tunnel(open: Opener, node: string, spec: IoSpec) {
  return openTunnel(checkNodeId(node), spec, { client: await open() });
}

function path(p: string, what: string): string {
  if (typeof p !== "string" || p === "" || p.includes("\0")) throw new PythondError("usage", `${what}: a path is needed (got ${JSON.stringify(p)})`);
  return p;
}

/** Says which machine a file error is about: the node's messages name only the path. */
function onNode(node: string, e: unknown): unknown {
  if (!(e instanceof PythondError)) return e;
  if (e.code === "is_directory") return new PythondError(e.code, `${e.message.replace(/ \(use -r\)$/, "")} on '${node}' (recursive: true copies directories)`);
  if (["not_found", "not_directory", "permission_denied", "no_space"].includes(e.code)) return new PythondError(e.code, `${e.message} (on '${node}')`);
  return e;
}

/** Copies a local file (or directory, recursive) to `remote` on the node (into it when it is a directory). */
export async function put(open: Opener, node: string, local: string, remote: string, opts: TransferOptions = {}): Promise<TransferSummary> {
  const io = await tunnel(open, node, { kind: "put", dest: path(remote, "put"), resume: opts.resume !== false });
  try {
    const s = await sendTree(io, path(local, "put"), { recursive: opts.recursive });
    return { target: s.target, files: s.files, bytes: s.bytes, resumed: s.resumed };
  } catch (e) {
    throw onNode(node, e);
  }
}

/** Copies `remote` from the node to a local path (into it when it is a directory). */
export async function get(open: Opener, node: string, remote: string, local: string, opts: TransferOptions = {}): Promise<TransferSummary> {
  const io = await tunnel(open, node, { kind: "get", src: path(remote, "get"), recursive: opts.recursive });
  try {
    const s = await receiveTree(io, path(local, "get"), { resume: opts.resume !== false });
    return { target: s.target, files: s.files, bytes: s.bytes, resumed: s.resumed };
  } catch (e) {
    throw onNode(node, e);
  }
}

/** Writes `data` to `remote` on the node, atomically (a part file renamed once complete and checked). */
export async function writeFile(open: Opener, node: string, remote: string, data: string | Uint8Array): Promise<TransferSummary> {
  if (typeof data !== "string" && !(data instanceof Uint8Array)) throw new PythondError("usage", "writeFile takes a string or a Uint8Array");
  const io = await tunnel(open, node, { kind: "put", dest: path(remote, "writeFile"), resume: false });
  try {
    const s = await sendTree(io, "-", { stdin: chunksOf(data), name: basename(remote) });
    return { target: s.target, files: s.files, bytes: s.bytes, resumed: 0 };
  } catch (e) {
    throw onNode(node, e);
  }
}

export interface ReadOptions {
  /** First byte (default 0). */
  offset?: number;
  /** Bytes at most (default: to the end). The transfer stops once they are here. */
  length?: number;
}

export interface FileRead {
  data: Uint8Array;
  /** The file's size on the node. */
  size: number;
  offset: number;
  /** The data reaches the end of the file. */
  eof: boolean;
}

/**
 * Bytes [offset, offset+length) of `remote` on the node. The wire's resume point does the seeking:
 * as receiver we answer the file's entry with `at: offset`, so the node sends from there and only
 * the range (and what is in flight when we have it) crosses the link; the node reads the prefix
 * from its own disk to hash it. A range is not a whole file, so nothing is verified or written;
 * once the range is here the tunnel is closed (the node stops sending).
 */
export async function readFile(open: Opener, node: string, remote: string, opts: ReadOptions = {}): Promise<FileRead> {
  const offset = opts.offset ?? 0;
  const length = opts.length ?? Number.POSITIVE_INFINITY;
  if (!Number.isInteger(offset) || offset < 0) throw new PythondError("usage", `offset must be a whole number >= 0 (got ${offset})`);
  if (!(length >= 0)) throw new PythondError("usage", `length must be >= 0 (got ${length})`);
  const io = await tunnel(open, node, { kind: "get", src: path(remote, "readFile") });
  const kept = new Kept();
  try {
    const root = await recvControl(io);
    if (root.t !== "root" || !("kind" in root)) throw new PythondError("transfer_failed", "the transfer did not start with its root");
    if (root.kind !== "file") throw new PythondError("is_directory", `is a directory: ${remote}`);
    await send(io, { t: "root", path: "-" });
    const entry = await recvControl(io);
    if (entry.t !== "entry" || entry.kind !== "file") throw new PythondError("transfer_failed", "the node sent no file");
    const size = entry.size ?? Number.POSITIVE_INFINITY;
    const start = Math.min(offset, size);
    await send(io, { t: "at", offset: start });
    let got = 0;
    while (got < length) {
      const m = await io.recv();
      if (m === null) throw new PythondError("transfer_failed", "the connection closed before the range arrived");
      if (typeof m === "string") {
        if (control(m).t === "end") break; // the file's end came first
        continue;
      }
      const take = m.subarray(0, Math.min(m.length, length - got));
      kept.add(take);
      got += take.length;
    }
    const data = kept.bytes();
    const total = entry.size ?? start + data.length;
    return { data, size: total, offset: start, eof: start + data.length >= total };
  } catch (e) {
    throw onNode(node, e);
  } finally {
    io.close();
  }
}
