/**
 * The attach relay: the local terminal <-> the daemon's WebSocket <-> the session's PTY.
 *
 * `attach <name> <rows> <cols>` first; after `OK attached` every binary frame is screen output and
 * every key is sent as a binary frame, except the detach key (Ctrl-], 0x1d), which never reaches
 * the session: it sends `detach` and the relay ends at `OK detached`. The daemon may end it too
 * (`OK detached` after Ctrl-D in the REPL, `ERR detached: …` when the session ends), or the
 * connection may drop; a signal (SIGTERM, SIGHUP) ends it from here. Whatever ends it, the
 * terminal is restored before `attach` returns, and nothing here prints: the CLI says what happened.
 */
import { Client } from "../client/connect.ts";
import { ReplyError } from "../client/api.ts";
import { PythondError } from "../protocol/errors.ts";
import { ATTACH, isError, plainError } from "../protocol/replies.ts";
import { buildFrame } from "../protocol/frame.ts";
import { LocalTerminal } from "./local.ts";

export type AttachOutcome =
  | { kind: "detached" }
  | { kind: "ended"; message: string }
  | { kind: "signal"; signal: NodeJS.Signals };

export interface AttachOptions {
  readOnly?: boolean;
  /** Screen bytes (the CLI writes them to stdout, blocking: a slow terminal slows the reads). */
  output(bytes: Uint8Array): void;
  /** Called once attached and in raw mode (the CLI prints its banner). */
  attached?(): void;
}

const SIGNALS: NodeJS.Signals[] = ["SIGTERM", "SIGHUP", "SIGINT", "SIGQUIT"];

export async function attach(name: string, opts: AttachOptions): Promise<AttachOutcome> {
  const term = LocalTerminal.open();
  const client = await Client.open();
  const handlers = new Map<NodeJS.Signals, () => void>();
  try {
    const size = term.size();
    const args = opts.readOnly ? [name, "--read-only"] : [name, String(size.rows), String(size.cols)];
    client.send(buildFrame("attach", args));
    const first = await client.nextText();
    if (first !== ATTACH.attached) throw new ReplyError(isError(first) ? first : new PythondError("internal", first).toFrame(), client.codes);
    term.enterRaw(); // before the banner: a key typed once the banner shows must reach the session
    opts.attached?.();

    let finish!: (o: AttachOutcome) => void;
    const ended = new Promise<AttachOutcome>((resolve) => (finish = resolve));
    for (const sig of SIGNALS) {
      const h = () => finish({ kind: "signal", signal: sig });
      handlers.set(sig, h);
      process.on(sig, h);
    }
    let detaching = false;
    term.onInput((bytes) => {
      if (detaching) return;
      const k = bytes.indexOf(ATTACH.detachKey);
      const keys = k < 0 ? bytes : bytes.subarray(0, k);
      try {
        if (keys.length && !opts.readOnly) client.send(keys);
        if (k >= 0) {
          detaching = true;
          client.send("detach");
        }
      } catch (e) {
        finish({ kind: "ended", message: PythondError.from(e).toFrame() });
      }
    });
    if (!opts.readOnly) {
      term.onResize((s) => {
        try {
          client.send(buildFrame("resize", [name, String(s.rows), String(s.cols)]));
        } catch {
          // the connection is gone; the read loop reports it
        }
      });
    }
    void (async () => {
      try {
        for (;;) {
          const m = await client.next();
          if ("binary" in m) opts.output(m.binary);
          else if (m.text === ATTACH.detached) return finish({ kind: "detached" });
          else if (isError(m.text)) return finish({ kind: "ended", message: plainError(m.text, client.codes) });
          // other text (`OK resized …`) needs nothing
        }
      } catch (e) {
        finish({ kind: "ended", message: PythondError.from(e).toFrame() });
      }
    })();
    return await ended;
  } finally {
    term.restore();
    for (const [sig, h] of handlers) process.off(sig, h);
    client.close();
  }
}
