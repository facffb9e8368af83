/**
 * The hub's part in a tunnel (`io <node>`): it splices the client's connection to one stream of
 * the node's link and forwards each unit unchanged both ways (src/fleet/io/tunnel.ts: credits are
 * counted by the client and the node, so at most a window per direction is ever in flight here).
 * The tunnel ends when the node ends the stream, the client goes, or the node's link drops (the
 * client is told; what happens next is the service's: a command runs on, a transfer resumes when
 * run again, a shell waits for a viewer).
 */
import type { ClientConn } from "../../daemon/conn.ts";
import type { Request } from "../../protocol/commands.ts";
import { PythondError } from "../../protocol/errors.ts";
import { IO_KINDS, type IoSpec } from "../../protocol/fleet-io.ts";
import { errReply, okReply } from "../../protocol/replies.ts";
import type { FleetHub } from "../hub/hub.ts";
import { garbage } from "../../link/garbage.ts";
import { openPipe } from "./mux-pipe.ts";

export const IO_OK = okReply("io");
/** Units relayed are fresh buffers: counted as garbage (src/link/garbage.ts; a 1 GiB copy through the hub left ~60 MB). */
export function relayed(n: number): void {
  garbage(n);
}

export function parseSpec(body: string): IoSpec {
  let spec: IoSpec;
  try {
    spec = JSON.parse(body) as IoSpec;
  } catch {
    throw new PythondError("usage", "io: the body must be the service's JSON spec");
  }
  if (!spec || typeof spec !== "object" || !IO_KINDS.includes(spec.kind)) {
    throw new PythondError("usage", `io: unknown service '${String((spec as { kind?: unknown })?.kind)}' (${IO_KINDS.join(", ")})`);
  }
  return spec;
}

/** The node's link, or a clear error (no such node, offline). */
export function nodeMux(fleet: FleetHub | undefined, node: string) {
  if (!fleet) throw new PythondError("no_node", `no node '${node}' -- this daemon is not a hub (start it with --listen HOST:PORT)`);
  const e = fleet.registry.get(node);
  const mux = fleet.port(node).mux;
  if (e.state !== "online" || !mux || mux.closed) {
    throw new PythondError("node_offline", `node '${node}' is offline (since ${new Date(e.since).toISOString()}; see: pysh nodes)`);
  }
  return mux;
}

export async function hubIo(fleet: FleetHub | undefined, conn: ClientConn, req: Request): Promise<"ok" | "error"> {
  const node = req.args[0]!;
  const spec = parseSpec(req.body);
  if ((spec.kind === "put" || spec.kind === "get") && spec.local) {
    // the hub does the client's end itself (src/fleet/io/hub-files.ts)
    const { hubFiles } = await import("./hub-files.ts");
    return hubFiles(fleet, conn, node, spec);
  }
  const pipe = openPipe(nodeMux(fleet, node), spec);
  conn.reply.text(IO_OK);
  return new Promise((resolve) => {
    let over = false;
    const end = (status: "ok" | "error") => {
      if (over) return;
      over = true;
      conn.attached = undefined;
      resolve(status);
    };
    conn.attached = {
      session: `io:${node}`,
      input: (b) => {
        relayed(b.length);
        pipe.send([], b); // a whole unit from the client, passed on as it is
      },
      detach: () => {
        pipe.close();
        end("ok");
      },
    };
    pipe.onUnit((u) => {
      relayed(u.length);
      if (conn.open) conn.reply.binary(u);
    });
    pipe.onClose((reason) => {
      if (reason !== "ended" && conn.open) conn.reply.text(errReply(new PythondError("node_offline", `node '${node}': ${reason}`), conn.codes));
      end(reason === "ended" ? "ok" : "error");
    });
    conn.onClose(() => {
      pipe.close();
      end("ok");
    });
  });
}
