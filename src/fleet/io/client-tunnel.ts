/**
 * The client's end of a tunnel: one connection to the daemon (the hub), `io <node>` with the
 * service's spec, then the connection's binary frames are the tunnel's units (tunnel.ts). A text
 * frame after `OK io` is the hub speaking: the node's link went away (`ERR node 'x': …`).
 */
import { Client } from "../../client/connect.ts";
import { ReplyError } from "../../client/api.ts";
import { PythondError } from "../../protocol/errors.ts";
import { isError, parseError } from "../../protocol/replies.ts";
import type { IoSpec } from "../../protocol/fleet-io.ts";
import { IO_OK } from "./hub-io.ts";
import { TunnelDuplex, unitBytes, type Pipe } from "./tunnel.ts";

export async function openTunnel(node: string, spec: IoSpec, opts: { client?: Client; window?: number } = {}): Promise<TunnelDuplex> {
  const client = opts.client ?? (await Client.open());
  try {
    client.send(`io ${node}\n${JSON.stringify(spec)}`);
    const first = await client.nextText();
    if (first !== IO_OK) throw new ReplyError(first, client.codes);
  } catch (e) {
    client.close();
    throw e;
  }
  let onUnit: (u: Uint8Array) => void = () => {};
  let onClose: (reason: string) => void = () => {};
  let closed = false;
  const pipe: Pipe = {
    send: (head, payload) => {
      if (!closed) client.send(unitBytes(head, payload));
    },
    room: 0, // a unit is one WebSocket message as it is
    sendRoomy: (buf) => {
      if (!closed) client.send(buf);
    },
    onUnit: (cb) => (onUnit = cb),
    onClose: (cb) => (onClose = cb),
    close: () => {
      closed = true;
      client.close();
    },
  };
  const io = new TunnelDuplex(pipe, opts.window);
  void (async () => {
    try {
      for (;;) {
        const m = await client.next();
        if ("binary" in m) onUnit(m.binary);
        else if (isError(m.text)) return onClose(parseError(m.text, client.codes).message);
      }
    } catch (e) {
      onClose(PythondError.from(e).message);
    }
  })();
  return io;
}
