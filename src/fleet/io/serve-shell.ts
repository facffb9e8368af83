/**
 * The node's side of `pysh shell`: one tunnel is one viewer. Screen bytes are sent in order as
 * the PTY produces them; a viewer more than MAX_BEHIND bytes behind (a stalled client, a link that
 * stopped forwarding) is detached with a message rather than buffered without bound — the shell
 * lives on and a re-attach replays the recent screen.
 */
import { PythondError } from "../../protocol/errors.ts";
import type { IoSpec } from "../../protocol/fleet-io.ts";
import type { Duplex } from "../duplex.ts";
import type { ShellExit, ViewerHandle } from "../shell/shell.ts";
import type { ShellTable } from "../shell/table.ts";
import { json, sendError } from "./serve-sh.ts";

const MAX_BEHIND = 8 << 20;

export async function serveShell(shells: ShellTable, spec: Extract<IoSpec, { kind: "shell" }>, io: Duplex): Promise<void> {
  if (spec.action === "list") {
    await io.send(json({ t: "shells", shells: shells.list() })).catch(() => {});
    return io.close();
  }
  let behind = 0;
  let chain = Promise.resolve();
  let over = false;
  let handle: ViewerHandle | undefined;
  const push = (m: string | Uint8Array, size: number) => {
    behind += size;
    chain = chain
      .then(() => io.send(m))
      .then(
        () => void (behind -= size),
        () => stop(),
      );
  };
  const stop = () => {
    if (over) return;
    over = true;
    handle?.detach();
    io.close();
  };
  const viewer = {
    output(bytes: Uint8Array) {
      if (over) return;
      if (behind > MAX_BEHIND) {
        over = true;
        handle?.detach();
        void sendError(io, new PythondError("transfer_failed", "this viewer fell too far behind and was detached (attach again: the shell is still there)"));
        return;
      }
      push(bytes, bytes.length);
    },
    ended(e: ShellExit) {
      if (over) return;
      push(json({ t: "exit", ...e }), 0);
      chain = chain.then(() => stop());
    },
  };
  try {
    if (spec.action === "open") await shells.ready();
    const shell =
      spec.action === "open"
        ? shells.open({ cwd: spec.cwd, cols: spec.cols, rows: spec.rows, lingerMs: spec.lingerMs }, spec.id).shell
        : shells.get(spec.id ?? "");
    await io.send(json({ t: "attached", id: shell.id, cols: shell.cols, rows: shell.rows }));
    handle = shell.attach(viewer, { readOnly: spec.readOnly });
    if (spec.action === "attach" && !spec.readOnly && spec.cols && spec.rows) handle.resize(spec.cols, spec.rows);
  } catch (e) {
    return sendError(io, e);
  }
  for (;;) {
    const m = await io.recv();
    if (m === null || over) break;
    try {
      if (typeof m === "string") {
        const c = JSON.parse(m) as { t: string; cols?: number; rows?: number };
        if (c.t === "resize") handle.resize(Number(c.cols), Number(c.rows));
        else if (c.t === "detach") break;
      } else handle.write(m);
    } catch (e) {
      // a read-only viewer typing, a bad size: said to this viewer, the shell is not disturbed
      push(json({ t: "warn", message: PythondError.from(e).message }), 0);
    }
  }
  stop();
}
