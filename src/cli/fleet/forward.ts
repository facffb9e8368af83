/**
 * pysh forward <node> [BIND:]LOCAL_PORT:HOST:PORT   (like ssh -L)
 *
 * Listens locally (127.0.0.1 unless a bind address is given) until Ctrl-C; each connection gets
 * its own tunnel to the node, which connects to HOST:PORT as the node sees it. A connection the
 * node cannot make is closed here and said on stderr; the others go on.
 */
import { ReplyError } from "../../client/api.ts";
import { Client } from "../../client/connect.ts";
import { openTunnel } from "../../fleet/io/client-tunnel.ts";
import { listenForward } from "../../fleet/forward/forward.ts";
import { parseForwardSpec } from "../../fleet/forward/spec.ts";
import { PythondError } from "../../protocol/errors.ts";
import { isError } from "../../protocol/replies.ts";
import { errLine, stderr } from "../out.ts";

const USAGE = "usage: pysh forward <node> [BIND:]LOCAL_PORT:HOST:PORT";

/** The node must exist and be online before we take a port for it. */
async function checkNode(node: string): Promise<void> {
  const c = await Client.open();
  try {
    c.send("nodes --json");
    const text = await c.nextText();
    if (isError(text)) throw new ReplyError(text, c.codes);
    const nodes = JSON.parse(text) as Array<{ id: string; state: string }>;
    const n = nodes.find((x) => x.id === node);
    if (!n) throw new PythondError("no_node", `no node '${node}' -- nodes: ${nodes.map((x) => x.id).join(", ") || "(none)"}`);
    if (n.state !== "online") throw new PythondError("node_offline", `node '${node}' is offline (see: pysh nodes)`);
  } finally {
    c.close();
  }
}

export async function forwardMain(argv: string[]): Promise<number> {
  try {
    if (argv.length !== 2) throw new PythondError("usage", USAGE);
    const [node, specText] = argv as [string, string];
    const spec = parseForwardSpec(specText);
    await checkNode(node);
    const fwd = await listenForward(spec, () => openTunnel(node, { kind: "forward", host: spec.host, port: spec.port }), {
      onError: (e) => stderr(`pysh: forward: ${e.message}\n`),
    });
    const where = fwd.address.host.includes(":") ? `[${fwd.address.host}]:${fwd.address.port}` : `${fwd.address.host}:${fwd.address.port}`;
    stderr(`pysh: forwarding ${where} -> ${spec.host}:${spec.port} on '${node}' (Ctrl-C stops)\n`);
    const sig = await new Promise<NodeJS.Signals>((resolve) => {
      for (const s of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.once(s, () => resolve(s));
    });
    await fwd.close();
    stderr(`pysh: forward stopped (${sig})\n`);
    return 0;
  } catch (e) {
    errLine(e instanceof ReplyError ? e.reply : PythondError.from(e).toFrame());
    return 1;
  }
}
