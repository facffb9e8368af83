/**
 * The floor of the persistent-connection benchmark: a minimal Python process evaluating cells
 * (`eval(code, ns)`, the repr of the value) over a Unix socketpair, with u32-length framing.
 *
 * Run as a script (`bun bench/floor.ts <socket>`), it is the "do-nothing relay" baseline: a Bun
 * WebSocket server on a Unix socket that hands each text frame to such an evaluator and sends
 * back its answer, and does nothing else. That is the least any design with a router process
 * between the client and Python (pythond's daemon) can cost.
 */
const FLOOR_PY = `
import socket, struct, sys
s = socket.socket(fileno=3)
ns = {"x": 41}
buf = b""
while True:
    while len(buf) < 4 or len(buf) < 4 + struct.unpack(">I", buf[:4])[0]:
        d = s.recv(65536)
        if not d:
            sys.exit(0)
        buf += d
    n = struct.unpack(">I", buf[:4])[0]
    code, buf = buf[4:4 + n].decode(), buf[4 + n:]
    out = repr(eval(code, ns)).encode()
    s.sendall(struct.pack(">I", len(out)) + out)
`;

export interface FloorEvaluator {
  pid: number;
  /** Sends one cell; its answer comes to onAnswer. */
  send(code: string): void;
  end(): Promise<void>;
}

/** Starts the evaluator (fd 3 in the child is its end of the socketpair). */
export async function startFloor(onAnswer: (answer: Uint8Array) => void): Promise<FloorEvaluator> {
  const proc = Bun.spawn(["python3", "-c", FLOOR_PY], { stdio: ["ignore", "inherit", "inherit", "socket-fd" as never] });
  const fd = (proc as unknown as { stdio: number[] }).stdio[3]!;
  let acc = new Uint8Array(0);
  const sock = (await Bun.connect({
    fd,
    socket: {
      data(_s: unknown, d: Uint8Array) {
        const merged = new Uint8Array(acc.length + d.length);
        merged.set(acc);
        merged.set(d, acc.length);
        acc = merged;
        while (acc.length >= 4) {
          const len = new DataView(acc.buffer, acc.byteOffset).getUint32(0);
          if (acc.length < 4 + len) break;
          const msg = acc.slice(4, 4 + len);
          acc = acc.slice(4 + len);
          onAnswer(msg);
        }
      },
    },
  } as never)) as { write(b: Uint8Array): number; end(): void };
  const enc = new TextEncoder();
  return {
    pid: proc.pid,
    send(code: string) {
      const c = enc.encode(code);
      const frame = new Uint8Array(4 + c.length);
      new DataView(frame.buffer).setUint32(0, c.length);
      frame.set(c, 4);
      sock.write(frame);
    },
    async end() {
      sock.end();
      await proc.exited;
    },
  };
}

if (import.meta.main) {
  // The do-nothing relay: one client at a time, each text frame is a cell, each answer a text frame.
  const path = process.argv[2]!;
  const dec = new TextDecoder();
  let client: { send(m: string): unknown } | undefined;
  const ev = await startFloor((a) => client?.send(dec.decode(a)));
  Bun.serve({
    unix: path,
    fetch: (req, server) => (server.upgrade(req) ? undefined : new Response("WebSocket only", { status: 400 })),
    websocket: {
      open(ws) {
        client = ws;
      },
      message(_ws, m) {
        ev.send(String(m));
      },
    },
  });
  console.log("ready");
}
