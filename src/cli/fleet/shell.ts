/**
 * pysh shell <node> [--cwd DIR] [--linger S]           a new login shell in a PTY on the node
 * pysh shell <node> --attach <id> [--read-only]        back to a shell (its recent screen first)
 * pysh shell <node> --list [--json]
 *
 * The relay is attach's: raw mode, resize, Ctrl-] detaches, the terminal restored on every exit
 * path (src/pty/local.ts). The shell is the node's: it survives this client and the link, for
 * --linger (default 10 min) after its last viewer. pysh exits with the shell's exit code.
 */
import { ReplyError } from "../../client/api.ts";
import { openTunnel } from "../../fleet/io/client-tunnel.ts";
import type { ShellInfo } from "../../fleet/shell/shell.ts";
import { ATTACH } from "../../protocol/commands.ts";
import { PythondError } from "../../protocol/errors.ts";
import { LocalTerminal } from "../../pty/local.ts";
import { errLine, line, stderr, stdout } from "../out.ts";
import { parseArgs, seconds } from "./args.ts";

const USAGE = "usage: pysh shell <node> [--cwd DIR] [--linger S] | --attach <id> [--read-only] | --list [--json]";
const SIGNALS: NodeJS.Signals[] = ["SIGTERM", "SIGHUP"];

export async function shellMain(argv: string[]): Promise<number> {
  let a;
  try {
    a = parseArgs(argv, { valued: ["cwd", "attach", "linger"], switches: ["list", "json", "read-only"], positionals: 1, usage: USAGE });
    if (a.positional.length !== 1 || a.rest.length) throw new PythondError("usage", USAGE);
  } catch (e) {
    errLine(PythondError.from(e).toFrame());
    return 1;
  }
  const node = a.positional[0]!;
  try {
    if (a.opts.list) {
      const io = await openTunnel(node, { kind: "shell", action: "list" });
      const r = JSON.parse(String(await io.recv())) as { t: string; shells?: ShellInfo[]; message?: string };
      io.close();
      if (r.t === "err") throw new PythondError("io", String(r.message));
      const shells = r.shells ?? [];
      if (a.opts.json) line(JSON.stringify(shells));
      else
        line(
          shells.length
            ? shells.map((s) => `${s.id}\tpid ${s.pid}\t${s.viewers} viewer${s.viewers === 1 ? "" : "s"}\t${s.cols}x${s.rows}\t${s.cwd}${s.idleSince ? `\tidle since ${new Date(s.idleSince).toISOString()}` : ""}`).join("\n")
            : "(no shells)",
        );
      return 0;
    }
    return await relay(node, a.opts);
  } catch (e) {
    errLine(e instanceof ReplyError ? e.reply : PythondError.from(e).toFrame());
    return 255;
  }
}

async function relay(node: string, opts: Record<string, string | true>): Promise<number> {
  const term = LocalTerminal.open();
  const { rows, cols } = term.size();
  const readOnly = opts["read-only"] === true;
  const attachId = typeof opts.attach === "string" ? opts.attach : undefined;
  const io = await openTunnel(
    node,
    attachId
      ? { kind: "shell", action: "attach", id: attachId, readOnly, cols, rows }
      : { kind: "shell", action: "open", cwd: typeof opts.cwd === "string" ? opts.cwd : undefined, cols, rows, lingerMs: seconds(opts.linger, "--linger") },
  );
  const handlers = new Map<NodeJS.Signals, () => void>();
  try {
    const first = await io.recv();
    const hello = JSON.parse(typeof first === "string" ? first : "{}") as { t?: string; id?: string; message?: string };
    if (hello.t !== "attached") throw new PythondError("io", hello.message ?? "the node closed the shell");
    term.enterRaw();
    stderr(`pysh: shell ${hello.id} on '${node}'${readOnly ? " (read-only)" : ""}; Ctrl-] detaches (the shell keeps running)\r\n`);
    let finish!: (code: number | "detached" | NodeJS.Signals) => void;
    const ended = new Promise<number | "detached" | NodeJS.Signals>((r) => (finish = r));
    for (const sig of SIGNALS) {
      const h = () => finish(sig);
      handlers.set(sig, h);
      process.on(sig, h);
    }
    term.onInput((bytes) => {
      const k = bytes.indexOf(ATTACH.detachKey);
      const keys = k < 0 ? bytes : bytes.subarray(0, k);
      if (keys.length && !readOnly) void io.send(keys.slice()).catch(() => {});
      if (k >= 0) finish("detached");
    });
    if (!readOnly) term.onResize((s) => void io.send(JSON.stringify({ t: "resize", cols: s.cols, rows: s.rows })).catch(() => {}));
    void (async () => {
      for (;;) {
        const m = await io.recv();
        if (m === null) return finish("detached");
        if (m instanceof Uint8Array) {
          stdout(m);
          continue;
        }
        const r = JSON.parse(m) as { t: string; exit?: number; message?: string };
        if (r.t === "exit") return finish(r.exit ?? 0);
        if (r.t === "err") {
          stderr(`\r\npysh: ${r.message}\r\n`);
          return finish("detached");
        }
      }
    })();
    const outcome = await ended;
    term.restore();
    if (typeof outcome === "number") return outcome;
    stderr(`\npysh: detached from shell ${hello.id} on '${node}' (it keeps running: pysh shell ${node} --attach ${hello.id})\n`);
    return outcome === "detached" ? 0 : 128 + (outcome === "SIGHUP" ? 1 : 15);
  } finally {
    term.restore();
    for (const [sig, h] of handlers) process.off(sig, h);
    io.close();
  }
}
