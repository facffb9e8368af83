/**
 * A secret given on the command line is visible to every local user (`ps`, /proc/<pid>/cmdline)
 * for as long as the process runs. Like many daemons, we overwrite it in the process's own
 * argument area as soon as we start: on Linux /proc/self/stat gives the area's address and
 * /proc/self/mem lets a process write its own memory. It was still visible until then (a few
 * milliseconds of start-up), so the caller also warns. Elsewhere this does nothing (returns false).
 */
import { closeSync, openSync, readFileSync, writeSync } from "node:fs";

export function scrubArgv(secret: string): boolean {
  if (process.platform !== "linux" || !secret) return false;
  try {
    const stat = readFileSync("/proc/self/stat", "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const argStart = Number(fields[45]); // field 48 of proc(5): arg_start
    const cmdline = readFileSync("/proc/self/cmdline");
    const needle = Buffer.from(secret);
    const fd = openSync("/proc/self/mem", "r+");
    try {
      let scrubbed = false;
      for (let at = cmdline.indexOf(needle); at >= 0; at = cmdline.indexOf(needle, at + needle.length)) {
        writeSync(fd, Buffer.alloc(needle.length, "x"), 0, needle.length, argStart + at);
        scrubbed = true;
      }
      return scrubbed;
    } finally {
      closeSync(fd);
    }
  } catch {
    return false;
  }
}
