/**
 * `pysh new` options, checked before anything is sent: --cwd must be an existing directory (the
 * session would otherwise start somewhere else without saying so), --idle-timeout a number.
 * Paths travel percent-encoded: the command line of a frame is split on spaces.
 */
import { statSync } from "node:fs";
import { resolve } from "node:path";
import { PythondError } from "../protocol/errors.ts";
import type { Parsed } from "./spec.ts";

export function checkNewOptions(a: Parsed): string[] {
  const cwd = resolve(typeof a.opts.cwd === "string" ? a.opts.cwd : process.cwd());
  let isDir = false;
  try {
    isDir = statSync(cwd).isDirectory();
  } catch {}
  if (!isDir) throw new PythondError("usage", `--cwd ${cwd}: no such directory`);
  const args = ["--cwd", encodeURIComponent(cwd)];
  if (a.opts.replace) args.push("--replace");
  if (typeof a.opts.python === "string") args.push("--python", encodeURIComponent(a.opts.python));
  const idle = a.opts["idle-timeout"];
  if (typeof idle === "string") {
    if (!(Number(idle) > 0)) throw new PythondError("usage", `--idle-timeout takes a number of seconds > 0 (got ${idle})`);
    args.push("--idle-timeout", idle);
  }
  return args;
}
