/**
 * Shared by the release, installer, wheel and service tests: the real release in dist/release
 * (built by `bun scripts/release.ts`, all six targets), rebuilt only when its inputs changed
 * (scripts/release/inputs.ts), and a daemon started from any binary (an installed one, a
 * wheel's) with the harness's private environment.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { buildCommit } from "../../scripts/compile.ts";
import { inputsDigest } from "../../scripts/release/inputs.ts";
import { Daemon, LineWatcher, ROOT, type Env } from "./harness.ts";

export const RELEASE = join(ROOT, "dist", "release");
export const VERSION = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;

let building: Promise<void> | null = null;

/** Builds dist/release unless it was built from exactly these inputs. */
export function ensureRelease(): Promise<void> {
  building ??= (async () => {
    const stamp = join(RELEASE, ".inputs");
    if (existsSync(stamp) && readFileSync(stamp, "utf8").trim() === inputsDigest(ROOT, buildCommit())) return;
    const p = Bun.spawn([process.execPath, join(ROOT, "scripts", "release.ts")], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
    const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    if (code !== 0) throw new Error(`release build failed (${code}):\n${out}\n${err}`);
    process.stderr.write(out.split("\n").filter((l) => /^(compiled|compressed|release|wheels)/.test(l)).join("\n") + "\n");
  })();
  return building;
}

/** SHA256SUMS as a map name -> hex. */
export function releaseSums(dir = RELEASE): Map<string, string> {
  const m = new Map<string, string>();
  for (const l of readFileSync(join(dir, "SHA256SUMS"), "utf8").trim().split("\n")) {
    const [hex, name] = l.split(/\s+\*?/, 2) as [string, string];
    m.set(name, hex);
  }
  return m;
}

export function sha256File(path: string): string {
  return new Bun.CryptoHasher("sha256").update(readFileSync(path)).digest("hex");
}

/** A daemon run from the given binary (an installed copy, a wheel's) instead of dist/pythond. */
export class BinDaemon extends Daemon {
  /** prefix: a command to run the binary with (an emulator) */
  constructor(e: Env, readonly bin: string, readonly prefix: string[] = []) {
    super(e);
  }

  override async start(args: string[] = []): Promise<this> {
    this.proc = Bun.spawn([...this.prefix, this.bin, "daemon", ...args], { env: this.e.env, cwd: this.e.dir, stdout: "pipe", stderr: "pipe" });
    this.log = new LineWatcher(this.proc.stderr as ReadableStream<Uint8Array>);
    await this.log.waitFor(/listening on/);
    return this;
  }
}
