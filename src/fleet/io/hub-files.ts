/**
 * `pysh put` / `pysh get` done by the hub itself for a client on its own machine (`local` in the
 * spec, src/protocol/fleet-io.ts): the hub runs the file engine (src/fleet/files/) on the client's
 * file and a tunnel to the node, and tells the client only progress and the outcome.
 *
 * Why: streamed through the hub, every byte crosses two hops (pysh to the hub over the local
 * WebSocket, the hub to the node over TLS) and three busy processes; the local hop alone costs
 * ~1.5 CPU s per GiB, as much as the TLS hop (bench/RESULTS.md). Done here, the hub reads (or
 * writes) the file and hashes it, the node does the other end: one hop, two processes.
 *
 * Why it is safe: the hub is the client's own daemon (same user: the socket is 0600 and pysh
 * checks its owner), and a local client may already run any code as that user (`pysh run`). Only
 * a local caller is served, and only when the hub finds at the client's path the very file the
 * client stat'ed (device and inode): a hub in another mount namespace (a private /tmp) answers
 * not_local and the client streams as before.
 */
import { stat } from "node:fs/promises";
import type { ClientConn } from "../../daemon/conn.ts";
import { PythondError } from "../../protocol/errors.ts";
import { IO_LOCAL_OK, type IoSpec, type LocalEnd } from "../../protocol/fleet-io.ts";
import { receiveTree } from "../files/receive.ts";
import { sendTree } from "../files/send.ts";
import type { FleetHub } from "../hub/hub.ts";
import { nodeMux } from "./hub-io.ts";
import { openPipe } from "./mux-pipe.ts";
import { TunnelDuplex } from "./tunnel.ts";

const PROGRESS_EVERY_MS = 100;

/** Throws not_local unless this process sees the client's file as the same file. */
async function sameFile(conn: ClientConn, local: LocalEnd): Promise<void> {
  if (conn.caller !== "local") throw new PythondError("not_local", "the hub reads and writes files only for clients on its own machine");
  const st = await stat(local.id.path, { bigint: true }).catch(() => null);
  if (!st || String(st.dev) !== local.id.dev || String(st.ino) !== local.id.ino) {
    throw new PythondError("not_local", `the hub does not see ${local.id.path} as the client does`);
  }
}

export async function hubFiles(fleet: FleetHub | undefined, conn: ClientConn, node: string, spec: IoSpec & { kind: "put" | "get" }): Promise<"ok" | "error"> {
  const local = spec.local!;
  await sameFile(conn, local);
  const { local: _, ...nodeSpec } = spec;
  const io = new TunnelDuplex(openPipe(nodeMux(fleet, node), nodeSpec));
  conn.reply.text(IO_LOCAL_OK);
  const say = (m: object) => {
    if (conn.open) conn.reply.text(JSON.stringify(m));
  };
  // the client gone (Ctrl-C): the transfer stops; a part file stays for the next run to resume
  conn.onClose(() => io.close());
  let last = 0;
  const onProgress = (path: string, done: number, size: number | null) => {
    const now = performance.now();
    if (!local.progress || (now - last < PROGRESS_EVERY_MS && done !== size)) return;
    last = now;
    say({ t: "progress", path, done, size });
  };
  try {
    if (spec.kind === "put") {
      const sum = await sendTree(io, local.path, { recursive: local.recursive, onProgress });
      say({ t: "done", ...sum, resumedFiles: [] });
    } else {
      const sum = await receiveTree(io, local.path, { resume: local.resume, onProgress });
      say({ t: "done", ...sum });
    }
    return "ok";
  } catch (e) {
    const err = PythondError.from(e);
    say({ t: "err", code: err.code, message: err.message });
    return "error";
  }
}
