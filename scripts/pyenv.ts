/**
 * The Python environment the tests need: a venv with websockets (the Python library's one
 * dependency), pytest, and matplotlib (the MCP figure test's sessions run in this interpreter).
 * Made once with the machine's python3 and pip as configured (its index; no download script of
 * ours), kept in node_modules/.cache/pythond-pyenv and remade only when this list changes.
 * The library itself is not installed there: tests import it from clients/python/src, and
 * clients/python/tests/test_packaging.py checks that `pip install ./clients/python` works.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const ROOT = join(import.meta.dir, "..");
export const PYENV_DIR = join(ROOT, "node_modules", ".cache", "pythond-pyenv");
// mypy: test_typing.py checks the package with --strict. setuptools and wheel: test_packaging.py builds the package without an isolated build environment
// (which would ask the index for them on every run).
const REQUIREMENTS = ["websockets>=13", "pytest", "matplotlib", "setuptools>=61", "wheel", "mypy"];

export function pyenvPython(): string {
  return join(PYENV_DIR, "bin", "python");
}

function run(cmd: string[]): { ok: boolean; out: string } {
  const p = Bun.spawnSync(cmd, { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  return { ok: p.exitCode === 0, out: `${p.stdout.toString()}${p.stderr.toString()}` };
}

/** Returns the venv's python, making the venv first if needed; throws with pip's words if it cannot. */
export function ensurePyenv(log: (s: string) => void = (s) => process.stderr.write(s + "\n")): string {
  const marker = join(PYENV_DIR, ".requirements");
  const want = REQUIREMENTS.join("\n");
  if (existsSync(pyenvPython()) && existsSync(marker) && readFileSync(marker, "utf8") === want) return pyenvPython();
  const started = Date.now();
  log(`pyenv: making ${PYENV_DIR} (${REQUIREMENTS.join(", ")}) ...`);
  rmSync(PYENV_DIR, { recursive: true, force: true });
  mkdirSync(join(PYENV_DIR, ".."), { recursive: true });
  const python = process.env.PYTHON || "python3";
  let r = run([python, "-m", "venv", PYENV_DIR]);
  if (!r.ok) throw new Error(`pyenv: ${python} -m venv failed:\n${r.out}`);
  // --retries 0: an index that cannot be reached is skipped at once (pip's default retries it
  // for minutes) and the next configured one is used.
  r = run([pyenvPython(), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--retries", "0", ...REQUIREMENTS]);
  if (!r.ok) {
    rmSync(PYENV_DIR, { recursive: true, force: true });
    throw new Error(`pyenv: pip install ${REQUIREMENTS.join(" ")} failed:\n${r.out.split("\n").filter((l) => !/Retrying|is ignored/.test(l)).join("\n")}`);
  }
  writeFileSync(marker, want);
  log(`pyenv: ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return pyenvPython();
}

if (import.meta.main) console.log(ensurePyenv());
