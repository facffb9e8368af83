/**
 * The Python side of a session, embedded in the binary as text and written out once per content
 * hash to `<runtime>/py-<hash>/`, so workers started by an older binary keep their own files while a
 * newer binary runs (in-place upgrades: see DESIGN decision 1).
 */
import { existsSync, mkdirSync, renameSync, writeFileSync, rmSync } from "node:fs";
import { join } from "node:path";
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
};

export function bundleHash(): string {
  const h = Bun.hash(Object.entries(FILES).map(([k, v]) => `${k}\0${v}`).join("\0"));
  return h.toString(16).padStart(16, "0").slice(0, 12);
}

/** Writes the bootstrap files (atomically, once) and returns the path of bootstrap.py. */
export function materialiseBootstrap(runtime: string): string {
  const dir = join(runtime, `py-${bundleHash()}`);
  const entry = join(dir, "bootstrap.py");
  if (existsSync(entry)) return entry;
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(join(tmp, "_pythond"), { recursive: true, mode: 0o700 });
  for (const [rel, text] of Object.entries(FILES)) writeFileSync(join(tmp, rel), text, { mode: 0o600 });
  try {
    renameSync(tmp, dir);
  } catch {
    rmSync(tmp, { recursive: true, force: true }); // another daemon won the race: its copy is identical
  }
  return entry;
}
