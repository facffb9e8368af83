/**
 * A daemon (a hub or a node: the processes that move bulk bytes) on an AMD x86-64 Linux machine
 * starts itself again once, in place, with glibc told not to use `rep movsb` for mid-sized copies.
 *
 * Why: glibc's memmove copies from a few KiB up to about the cache size with `rep movsb`, which on
 * AMD EPYC is several times slower when source and destination are not equally aligned; Bun's TLS
 * read path copies every record that way. Measured on this project's machines (AMD EPYC, glibc
 * 2.36, Bun 1.4.5): a plain Bun TLS socket copy of 1 GiB spent 40% of its CPU in that memmove and
 * took 2.2 CPU s; with GLIBC_TUNABLES=glibc.cpu.x86_rep_movsb_threshold=1073741824 (vector loops
 * at every alignment) 1.37 CPU s, and the file-transfer benchmark's plain TLS copy went from 380
 * to 628 MB/s (bench/RESULTS.md).
 *
 * glibc reads its tunables once, when a process starts, so the setting needs a new process image:
 * execve(2), the same process id, terminal and parent (as `pyctl restart` does, server.ts), 15-18
 * ms once per daemon start. The re-started daemon puts its environment back as it was, so
 * nothing it starts (Python workers, shells, commands) sees the setting. Not done when the user set
 * that tunable already, elsewhere than x86-64 Linux on AMD with glibc (the musl build), or with
 * PYTHOND_TUNE_MEMCPY=0.
 */
import { closeSync, openSync, readSync } from "node:fs";

const TUNABLE = "glibc.cpu.x86_rep_movsb_threshold";
const VALUE = `${TUNABLE}=1073741824`;
/** Set across the execve: "1", and the user's own GLIBC_TUNABLES (if any) to put back. */
const MARK = "PYTHOND_MEMCPY_TUNED";
const WAS = "PYTHOND_GLIBC_TUNABLES_WAS";

function amd(): boolean {
  let fd = -1;
  try {
    fd = openSync("/proc/cpuinfo", "r");
    const head = Buffer.alloc(1024);
    const n = readSync(fd, head, 0, head.length, 0);
    return head.toString("latin1", 0, n).includes("AuthenticAMD");
  } catch {
    return false;
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}

/** Whether this runtime runs on glibc (the musl build does not: there is nothing to set). */
function glibc(): boolean {
  const report = (process as { report?: { getReport?(): { header?: { glibcVersionRuntime?: string } } } }).report;
  return typeof report?.getReport?.().header?.glibcVersionRuntime === "string";
}

/** Whether this process should start again with the tunable (see the file comment). */
export function wantsMemcpyTune(env: NodeJS.ProcessEnv = process.env, isAmd = amd, onGlibc = glibc): boolean {
  if (process.platform !== "linux" || process.arch !== "x64") return false;
  if (env[MARK] !== undefined || env.PYTHOND_TUNE_MEMCPY === "0") return false;
  if ((env.GLIBC_TUNABLES ?? "").includes(TUNABLE)) return false;
  return isAmd() && onGlibc();
}

/** The environment to start again with. */
export function tunedEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...env, [MARK]: "1", GLIBC_TUNABLES: env.GLIBC_TUNABLES ? `${env.GLIBC_TUNABLES}:${VALUE}` : VALUE };
  if (env.GLIBC_TUNABLES !== undefined) out[WAS] = env.GLIBC_TUNABLES;
  return out;
}

/** After the start again: the environment as the user gave it. */
export function restoreEnv(env: NodeJS.ProcessEnv): void {
  if (env[MARK] === undefined) return;
  if (env[WAS] !== undefined) env.GLIBC_TUNABLES = env[WAS];
  else delete env.GLIBC_TUNABLES;
  delete env[MARK];
  delete env[WAS];
}

/**
 * Starts this process again with the tunable when it should (does not return then), else puts
 * the environment back if this is the started-again process. Call first thing, before any socket
 * or file is opened.
 */
export function tuneMemcpy(): void {
  if (!wantsMemcpyTune()) return restoreEnv(process.env);
  const execve = (process as { execve?: (file: string, args: string[], env: NodeJS.ProcessEnv) => never }).execve;
  if (!execve) return;
  const self = process.execPath.replace(/ \(deleted\)$/, ""); // see server.ts restart
  const compiled = Bun.main.startsWith("/$bunfs/") || Bun.main.startsWith("B:/~BUN/");
  // argv[0] as it was: the role comes from the name the binary was started as
  const args = compiled ? [process.argv0 || self, ...process.argv.slice(2)] : [self, Bun.main, ...process.argv.slice(2)];
  try {
    execve(self, args, tunedEnv(process.env));
  } catch {
    // could not start again (the binary moved away, a seccomp policy): run as we are
  }
}
