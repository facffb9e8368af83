/**
 * Port forwarding, both ends (`pysh forward <node> [BIND:]LOCAL_PORT:HOST:PORT`, like `ssh -L`).
 *
 * Node side, `serveForward(io, host, port)`: one call per forwarded connection; connects to
 * HOST:PORT as the node sees it, answers `{"t":"open"}` (or `{"t":"err"}` saying why not: refused,
 * unknown host, timed out) and relays until both directions ended.
 *
 * Client side, `listenForward(spec, open)`: a local listener (127.0.0.1 unless a bind address is
 * given); each accepted connection gets its own stream from `open()` (a new stream on the node
 * link), waits for the node's answer, then relays. Connections are independent: many at once, one
 * refused or reset never touches the others.
 */
import { connect, createServer, type Server, type Socket } from "node:net";
import { PythondError } from "../../protocol/errors.ts";
import type { Duplex } from "../duplex.ts";
import { relay, type RelayResult } from "./relay.ts";
import type { ForwardSpec } from "./spec.ts";

const CONNECT_TIMEOUT_MS = 15_000;

function describe(e: NodeJS.ErrnoException, host: string, port: number): string {
  const why: Record<string, string> = {
    ECONNREFUSED: "connection refused",
    ENOTFOUND: "unknown host",
    EAI_AGAIN: "unknown host (name lookup failed)",
    EHOSTUNREACH: "host unreachable",
    ENETUNREACH: "network unreachable",
    ETIMEDOUT: "timed out",
  };
  return `cannot connect to ${host}:${port} from the node: ${why[e.code ?? ""] ?? e.message}`;
}

/** Node side of one forwarded connection. Resolves when it is over (never rejects). */
export async function serveForward(io: Duplex, host: string, port: number): Promise<RelayResult | null> {
  let socket: Socket;
  try {
    socket = await new Promise<Socket>((resolve, reject) => {
      const s = connect({ host, port, allowHalfOpen: true, noDelay: true });
      const timer = setTimeout(() => {
        s.destroy();
        reject(Object.assign(new Error("timed out"), { code: "ETIMEDOUT" }));
      }, CONNECT_TIMEOUT_MS);
      s.once("connect", () => {
        clearTimeout(timer);
        s.removeAllListeners("error");
        resolve(s);
      });
      s.once("error", (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
  } catch (e) {
    const err = new PythondError("connect_failed", describe(e as NodeJS.ErrnoException, host, port));
    await io.send(JSON.stringify({ t: "err", code: err.code, message: err.message })).catch(() => {});
    io.close();
    return null;
  }
  try {
    await io.send(JSON.stringify({ t: "open" }));
  } catch {
    socket.destroy(); // the client went away meanwhile
    return null;
  }
  return relay(socket, io);
}

export interface ForwardListener {
  /** The local address actually bound (port 0 → the chosen port). */
  address: { host: string; port: number };
  /** Connections being relayed now. */
  active(): number;
  close(): Promise<void>;
}

export interface ListenOptions {
  /** A connection the node could not open (the local connection is closed at once). */
  onError?(e: PythondError): void;
  /** A connection relayed to its end. */
  onDone?(r: RelayResult): void;
}

/** Client side: listens on spec.bind:spec.localPort and forwards each connection through `open()`. */
export async function listenForward(spec: ForwardSpec, open: () => Promise<Duplex>, opts: ListenOptions = {}): Promise<ForwardListener> {
  const sockets = new Set<Socket>();
  const server: Server = createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    void handle(socket);
  });
  async function handle(socket: Socket): Promise<void> {
    let io: Duplex;
    try {
      io = await open();
      const first = await io.recv();
      const m = typeof first === "string" ? (JSON.parse(first) as { t: string; code?: string; message?: string }) : null;
      if (m?.t !== "open") {
        io.close();
        throw m?.t === "err"
          ? new PythondError((m.code ?? "connect_failed") as "connect_failed", m.message ?? "refused")
          : new PythondError("connect_failed", "the node closed the forwarded connection");
      }
    } catch (e) {
      socket.destroy();
      opts.onError?.(PythondError.from(e));
      return;
    }
    const relayed = relay(socket, io);
    socket.resume(); // paused since accept: nothing was read before the node said yes
    const r = await relayed;
    opts.onDone?.(r);
  }
  await new Promise<void>((resolve, reject) => {
    server.once("error", (e: NodeJS.ErrnoException) => {
      const why = e.code === "EADDRINUSE" ? "address already in use" : e.code === "EACCES" ? "permission denied" : e.message;
      reject(new PythondError("usage", `cannot listen on ${spec.bind}:${spec.localPort}: ${why}`));
    });
    server.listen({ host: spec.bind, port: spec.localPort }, () => resolve());
  });
  const a = server.address();
  const address = typeof a === "object" && a ? { host: a.address, port: a.port } : { host: spec.bind, port: spec.localPort };
  return {
    address,
    active: () => sockets.size,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
