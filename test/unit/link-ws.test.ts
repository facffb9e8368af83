/**
 * The WebSocket adapters (src/link/ws.ts) carrying the multiplexer: a Bun.serve on a Unix socket
 * in a temporary directory (no process), ServerWsChannel on its side, ClientWsChannel on the
 * other. Requests, a stream larger than the socket buffers, and close reasons both ways.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Server, ServerWebSocket } from "bun";
import { encodeWorkerFrame } from "../../src/link/frame.ts";
import { Mux } from "../../src/link/mux.ts";
import { ClientWsChannel, ServerWsChannel } from "../../src/link/ws.ts";

type Data = { ch?: ServerWsChannel<Data> };
const dir = mkdtempSync(join(tmpdir(), "pythond-ws-"));
const sock = join(dir, "s");
let server: Server<unknown>;
/** Called with the reason when a server-side channel closes. */
let onServerClose: (reason: string) => void = () => {};

beforeAll(() => {
  server = Bun.serve<Data, never>({
    unix: sock,
    fetch: (req, srv) => (srv.upgrade(req, { data: {} }) ? undefined : new Response("no", { status: 400 })),
    websocket: {
      open(ws: ServerWebSocket<Data>) {
        const ch = (ws.data.ch = new ServerWsChannel(ws));
        ch.onClose((r) => onServerClose(r));
        const mux = new Mux(ch);
        mux.onFrame = (h, body) => {
          if (h.op === "echo") return mux.send({ op: "reply", rid: h.rid, ok: true }, body);
          if (h.op === "big") {
            const out = mux.serve(Number(h.rid), {});
            for (let i = 0; i < 64; i++) out.send("out", {}, new Uint8Array(256 << 10).fill(i));
            return out.end();
          }
          if (h.op === "bye") return ch.close("server says bye");
        };
      },
      message: (ws, m) => ws.data.ch!.deliver(typeof m === "string" ? m : new Uint8Array(m)),
      drain: (ws) => ws.data.ch!.drained(),
      close: (ws, code, reason) => ws.data.ch!.closed(reason || `code ${code}`),
    },
  });
});
afterAll(() => {
  server.stop(true);
  rmSync(dir, { recursive: true, force: true });
});

async function dial(): Promise<{ mux: Mux; ch: ClientWsChannel }> {
  const ws = new WebSocket(`ws+unix://${sock}`);
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = () => reject(new Error("connect failed"));
  });
  const ch = ClientWsChannel.wrap(ws);
  return { mux: new Mux(ch), ch };
}

test("requests and a 16 MiB stream over real WebSockets, in order", async () => {
  const { mux } = await dial();
  const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => mux.request("echo", {}, `m${i}`)));
  expect(replies.map((r) => new TextDecoder().decode(r.body))).toEqual(Array.from({ length: 20 }, (_, i) => `m${i}`));
  const got: number[] = [];
  let total = 0;
  await new Promise<void>((resolve, reject) => {
    mux.open((rid) => encodeWorkerFrame({ op: "big", rid }), {
      frame: (h, body) => {
        if (h.op === "end") return resolve();
        got.push(body[0]!);
        total += body.length;
      },
      lost: (r) => reject(new Error(r)),
    });
  });
  expect(got).toEqual(Array.from({ length: 64 }, (_, i) => i));
  expect(total).toBe(64 * (256 << 10));
  mux.close("done");
});

test("close reasons travel both ways", async () => {
  const a = await dial();
  const reason = new Promise<string>((r) => a.mux.onClosed(r));
  a.mux.send({ op: "bye" });
  expect(await reason).toBe("server says bye");
  const b = await dial();
  const closed = new Promise<string>((r) => (onServerClose = r));
  b.mux.close("client leaves");
  expect(await closed).toBe("client leaves");
});
