/**
 * pysh put <node> [-r] [--no-resume] <local|-> <remote>
 * pysh get <node> [-r] [--no-resume] <remote> <local|->
 *
 * Streams through a tunnel (src/fleet/files/: part file, SHA-256 checked by the receiver, rename,
 * modes, resume); with the local daemon as hub, the hub does the local end itself (via-hub.ts:
 * one hop instead of two). A progress bar (bytes, rate, ETA) on stderr when it is a terminal; nothing when
 * piped, except that a resumed transfer says so. Remote paths are relative to the node user's home.
 */
import { ReplyError } from "../../client/api.ts";
import { receiveTree } from "../../fleet/files/receive.ts";
import { sendTree } from "../../fleet/files/send.ts";
import { localDest, localSource, viaHub } from "../../fleet/files/via-hub.ts";
import { openTunnel } from "../../fleet/io/client-tunnel.ts";
import { PythondError } from "../../protocol/errors.ts";
import { errLine, stderr, stdout } from "../out.ts";
import { parseArgs, size } from "./args.ts";

const PUT_USAGE = "usage: pysh put <node> [-r] [--no-resume] <local|-> <remote>";
const GET_USAGE = "usage: pysh get <node> [-r] [--no-resume] <remote> <local|->";

/** Redraws one status line on stderr at most every 100 ms (only on a terminal). */
class Progress {
  private last = 0;
  private readonly t0 = performance.now();
  private shown = false;
  private base = 0;
  private path = "";
  readonly on = process.stderr.isTTY === true;

  update(path: string, done: number, total: number | null): void {
    if (!this.on) return;
    if (path !== this.path) {
      this.path = path;
      this.base = 0;
    }
    const now = performance.now();
    if (now - this.last < 100 && done !== total) return;
    this.last = now;
    const secs = Math.max((now - this.t0) / 1000, 0.001);
    const rate = (done - this.base) / secs;
    const pct = total ? ` ${((100 * done) / Math.max(total, 1)).toFixed(0).padStart(3)}%` : "";
    const eta = total && rate > 0 ? ` ETA ${Math.ceil((total - done) / rate)}s` : "";
    const name = path.length > 40 ? `…${path.slice(-39)}` : path;
    stderr(`\r\x1b[K${name}${pct} ${size(done)}${total ? ` of ${size(total)}` : ""} ${size(rate)}/s${eta}`);
    this.shown = true;
  }

  done(): void {
    if (this.shown) stderr("\r\x1b[K");
  }
}

function fail(e: unknown): number {
  errLine(e instanceof ReplyError ? e.reply : PythondError.from(e).toFrame());
  return 1;
}

function parse(argv: string[], usage: string) {
  const a = parseArgs(argv, { switches: ["recursive", "no-resume"], short: { r: "recursive" }, positionals: 3, usage });
  if (a.positional.length !== 3 || a.rest.length) throw new PythondError("usage", usage);
  return { node: a.positional[0]!, from: a.positional[1]!, to: a.positional[2]!, recursive: a.opts.recursive === true, resume: a.opts["no-resume"] !== true };
}

export async function putMain(argv: string[]): Promise<number> {
  const progress = new Progress();
  try {
    const p = parse(argv, PUT_USAGE);
    const onProgress = (path: string, done: number, total: number | null) => progress.update(path, done, total);
    const spec = { kind: "put" as const, dest: p.to, resume: p.resume };
    const local = localSource(p.from, p.recursive, progress.on);
    const sum =
      (local && (await viaHub(p.node, { ...spec, local }, p.from, onProgress))) ||
      (await sendTree(await openTunnel(p.node, spec), p.from, {
        recursive: p.recursive,
        stdin: p.from === "-" ? (Bun.stdin.stream() as unknown as AsyncIterable<Uint8Array>) : undefined,
        onProgress,
      }));
    progress.done();
    if (sum.resumed) stderr(`pysh: resumed: ${size(sum.resumed)} were already on '${p.node}' from an interrupted transfer\n`);
    if (progress.on) stderr(`pysh: put ${p.from} -> ${p.node}:${sum.target} (${sum.files} file${sum.files === 1 ? "" : "s"}, ${size(sum.bytes + sum.resumed)}, SHA-256 verified)\n`);
    return 0;
  } catch (e) {
    progress.done();
    return fail(e);
  }
}

export async function getMain(argv: string[]): Promise<number> {
  const progress = new Progress();
  try {
    const p = parse(argv, GET_USAGE);
    const onProgress = (path: string, done: number, total: number | null) => progress.update(path, done, total);
    const spec = { kind: "get" as const, src: p.from, recursive: p.recursive };
    const local = localDest(p.to, p.resume, progress.on);
    const sum =
      (local && (await viaHub(p.node, { ...spec, local }, p.to, onProgress))) ||
      (await receiveTree(await openTunnel(p.node, spec), p.to, {
        resume: p.resume,
        stdout: p.to === "-" ? (b) => stdout(b) : undefined,
        onProgress,
      }));
    progress.done();
    if (sum.resumed) stderr(`pysh: resumed: ${size(sum.resumed)} were already here from an interrupted transfer (${sum.resumedFiles.join(", ")})\n`);
    if (progress.on && p.to !== "-") stderr(`pysh: get ${p.node}:${p.from} -> ${sum.target} (${sum.files} file${sum.files === 1 ? "" : "s"}, ${size(sum.bytes + sum.resumed)}, SHA-256 verified)\n`);
    return 0;
  } catch (e) {
    progress.done();
    return fail(e);
  }
}
