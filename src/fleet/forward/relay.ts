/**
 * One forwarded connection: bytes between a TCP socket and a duplex stream (a node link stream),
 * both ways, with flow control on both: the socket is paused while the stream has no credit, and
 * the stream is not read while the socket's write buffer is full. A TCP half-close travels as
 * `{"t":"eof"}` (a client that sends a request and shuts down its write side still gets the
 * answer); the stream closes when both directions ended or either side failed (the other side then
 * resets its socket). Sockets must be made with `allowHalfOpen: true`, or node:net ends our
 * write side as soon as the peer ends its own.
 */
import type { Socket } from "node:net";
import type { Duplex } from "../duplex.ts";

export const EOF = JSON.stringify({ t: "eof" });

export interface RelayResult {
  /** Bytes socket → stream, stream → socket. */
  up: number;
  down: number;
}

export function relay(socket: Socket, io: Duplex): Promise<RelayResult> {
  const res: RelayResult = { up: 0, down: 0 };
  let upDone = false;
  let downDone = false;
  let finished = false;
  let resolve!: (r: RelayResult) => void;
  const done = new Promise<RelayResult>((r) => (resolve = r));
  const finish = (clean: boolean) => {
    if (finished) return;
    finished = true;
    // a failure on the far side shows here as a reset (RST), not as an orderly end the local
    // program could mistake for a complete answer
    if (!clean) socket.resetAndDestroy();
    io.close();
    resolve(res);
  };
  const maybeDone = () => {
    if (upDone && downDone) {
      socket.end();
      finish(true);
    }
  };

  // socket → stream: one chunk at a time, the socket paused until the stream took it
  let sending = Promise.resolve();
  const up = (step: () => Promise<void>) => {
    sending = sending.then(step).catch(() => finish(false));
  };
  socket.on("data", (chunk: Buffer) => {
    socket.pause();
    res.up += chunk.length;
    up(async () => {
      await io.send(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length));
      if (!finished) socket.resume();
    });
  });
  socket.on("end", () =>
    up(async () => {
      await io.send(EOF);
      upDone = true;
      maybeDone();
    }),
  );
  socket.on("error", () => finish(false));
  socket.on("close", () => {
    if (!upDone || !downDone) finish(false);
  });

  // stream → socket
  void (async () => {
    try {
      for (;;) {
        const m = await io.recv();
        if (m === null) return finish(false);
        if (typeof m === "string") {
          if (m === EOF) {
            socket.end(); // half-close: the other side may still send
            downDone = true;
            return maybeDone();
          }
          continue; // unknown control: ignored (newer peers)
        }
        res.down += m.length;
        if (!socket.write(m)) {
          await new Promise<void>((r) => {
            const go = () => {
              socket.off("drain", go);
              socket.off("close", go);
              r();
            };
            socket.on("drain", go);
            socket.on("close", go);
          });
          if (finished) return;
        }
      }
    } catch {
      finish(false);
    }
  })();
  return done;
}
