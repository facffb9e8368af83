/**
 * The Python side of a session, embedded in the binary as text and written out once per content
 * hash to `<runtime>/py-<hash>/`, so workers started by an older binary keep their own files while a
 * newer binary runs (in-place upgrades: see DESIGN decision 1).
 *
 * A copy found there is never trusted because it exists: before this daemon's first worker starts
 * from it, every entry is checked (ours, no link, not writable by others; no file we did not
 * write; each of ours byte for byte as embedded). A copy that fails is moved aside and written
 * afresh. Only `__pycache__` directories (the workers' own compiled files) may be there besides.
 */
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { PythondError } from "../protocol/errors.ts";
import { checkDir } from "../secure-fs.ts";
import bootstrap from "./py/bootstrap.py" with { type: "text" };
import pkgInit from "./py/_pythond/__init__.py" with { type: "text" };
import wire from "./py/_pythond/wire.py" with { type: "text" };
import capture from "./py/_pythond/capture.py" with { type: "text" };
import execute from "./py/_pythond/execute.py" with { type: "text" };
import cells from "./py/_pythond/cells.py" with { type: "text" };
import ops from "./py/_pythond/ops.py" with { type: "text" };
import protocol from "./py/_pythond/protocol.py" with { type: "text" };
import server from "./py/_pythond/server.py" with { type: "text" };
import mainThread from "./py/_pythond/main_thread.py" with { type: "text" };
import forking from "./py/_pythond/forking.py" with { type: "text" };
import terminal from "./py/_pythond/terminal.py" with { type: "text" };
import human from "./py/_pythond/human.py" with { type: "text" };
import editor from "./py/_pythond/editor.py" with { type: "text" };
import editorLink from "./py/_pythond/editor_link.py" with { type: "text" };
import safeFs from "./py/_pythond/safe_fs.py" with { type: "text" };

const FILES: Record<string, string> = {
  "bootstrap.py": bootstrap,
  "_pythond/__init__.py": pkgInit,
  "_pythond/wire.py": wire,
  "_pythond/capture.py": capture,
  "_pythond/execute.py": execute,
  "_pythond/cells.py": cells,
  "_pythond/ops.py": ops,
  "_pythond/protocol.py": protocol,
  "_pythond/server.py": server,
  "_pythond/main_thread.py": mainThread,
  "_pythond/forking.py": forking,
  "_pythond/terminal.py": terminal,
  "_pythond/human.py": human,
  "_pythond/editor.py": editor,
  "_pythond/editor_link.py": editorLink,
  "_pythond/safe_fs.py": safeFs,
};

export function bundleHash(): string {
  const h = Bun.hash(Object.entries(FILES).map(([k, v]) => `${k}\0${v}`).join("\0"));
  return h.toString(16).padStart(16, "0").slice(0, 12);
}

/** Whether `dir` holds exactly our files (and __pycache__ directories), all ours: see the header. */
export function bundleIntact(dir: string): boolean {
  try {
    const uid = process.getuid?.() ?? 0;
    const ok = (p: string, kind: "file" | "dir") => {
      const st = lstatSync(p);
      const right = kind === "file" ? st.isFile() : st.isDirectory();
      return right && st.uid === uid && (st.mode & 0o022) === 0;
    };
    for (const sub of ["", "_pythond"]) {
      const here = join(dir, sub);
      if (!ok(here, "dir")) return false;
      for (const name of readdirSync(here)) {
        const rel = sub ? `${sub}/${name}` : name;
        if (name === "__pycache__" || rel === "_pythond") {
          if (!ok(join(here, name), "dir")) return false;
          if (name === "__pycache__" && !readdirSync(join(here, name)).every((f) => ok(join(here, name, f), "file"))) return false;
          continue;
        }
        const text = FILES[rel];
        if (text === undefined || !ok(join(here, name), "file")) return false;
        if (readFileSync(join(here, name), "utf8") !== text) return false;
      }
    }
    return Object.keys(FILES).every((rel) => existsSync(join(dir, rel)));
  } catch {
    return false;
  }
}

/** Bundle directories this process has verified (or written) itself. */
const verified = new Set<string>();

/** Writes the bootstrap files (atomically, once) and returns the path of bootstrap.py. */
export function materialiseBootstrap(runtime: string): string {
  checkDir(runtime);
  const dir = join(runtime, `py-${bundleHash()}`);
  const entry = join(dir, "bootstrap.py");
  if (verified.has(dir)) return entry;
  if (lstatExists(dir)) {
    if (bundleIntact(dir)) {
      verified.add(dir);
      return entry;
    }
    // Not what we would have written: set it aside (a worker may still run from it) and write ours.
    const aside = `${dir}.bad-${process.pid}-${Date.now()}`;
    renameSync(dir, aside);
    rmSync(aside, { recursive: true, force: true });
  }
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(join(tmp, "_pythond"), { recursive: true, mode: 0o700 });
  for (const [rel, text] of Object.entries(FILES)) writeFileSync(join(tmp, rel), text, { mode: 0o600 });
  try {
    renameSync(tmp, dir);
  } catch {
    rmSync(tmp, { recursive: true, force: true }); // another daemon won the race
    if (!bundleIntact(dir)) throw new PythondError("worker_start", `cannot write the worker's files to ${dir}`);
  }
  verified.add(dir);
  return entry;
}

function lstatExists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}
