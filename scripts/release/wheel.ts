/**
 * A platform wheel carrying the binary, the way ruff and uv ship theirs: the executable goes to
 * `<name>.data/scripts/`, which pip installs into the venv's bin/ (Scripts\ on Windows). A wheel
 * cannot hold symlinks, so `pysh` and `pyctl` are two-line sh scripts that exec the binary beside
 * them in that role (`pythond pysh ...`; main.ts takes the role from the first argument).
 *
 * The Python client library (`import pythond`, clients/python/src/pythond/) goes in too when that
 * directory exists in the tree being released, with its one dependency (websockets, from
 * clients/python/pyproject.toml) as Requires-Dist; without it the wheel carries only the binary.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { zip, type Deflated } from "./archive.ts";

export const CLIENT_DIR = "clients/python/src/pythond";

const wrapper = (role: string) =>
  `#!/bin/sh\n# ${role}: the pythond binary beside this script, in its ${role} role (wheels carry no symlinks)\n` +
  `exec "$(dirname -- "$0")/pythond" ${role} "$@"\n`;

function b64url(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("base64url");
}

function pyFiles(root: string, dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (name === "__pycache__" || name.endsWith(".pyc")) continue;
    if (statSync(p).isDirectory()) out.push(...pyFiles(root, p));
    else out.push(relative(root, p));
  }
  return out;
}

/** `dependencies = [...]` of clients/python/pyproject.toml (one line, as it is written there). */
export function clientDeps(root: string): string[] {
  const toml = readFileSync(join(root, "clients/python/pyproject.toml"), "utf8");
  const m = /^dependencies\s*=\s*\[([^\]]*)\]/m.exec(toml);
  if (!m) throw new Error("clients/python/pyproject.toml: no one-line dependencies = [...]");
  return [...m[1]!.matchAll(/"([^"]+)"/g)].map((x) => x[1]!);
}

export interface WheelInput {
  root: string;
  version: string;
  platform: string; // wheel platform tag, from formats.ts wheelPlatform()
  binary: Deflated;
  readme: string;
  license: string;
  mtime: number;
}

export async function buildWheel(w: WheelInput): Promise<{ name: string; bytes: Uint8Array; withClient: boolean }> {
  const dist = `pythond-${w.version}`;
  const enc = new TextEncoder();
  const files: Array<{ name: string; mode: number; data: Uint8Array | Deflated }> = [
    { name: `${dist}.data/scripts/pythond`, mode: 0o755, data: w.binary },
    { name: `${dist}.data/scripts/pysh`, mode: 0o755, data: enc.encode(wrapper("pysh")) },
    { name: `${dist}.data/scripts/pyctl`, mode: 0o755, data: enc.encode(wrapper("pyctl")) },
  ];
  const clientRoot = join(w.root, "clients/python/src");
  const withClient = existsSync(join(w.root, CLIENT_DIR));
  if (withClient) {
    for (const rel of pyFiles(clientRoot, join(w.root, CLIENT_DIR))) {
      files.push({ name: rel, mode: 0o644, data: readFileSync(join(clientRoot, rel)) });
    }
  }
  const info = `${dist}.dist-info`;
  const metadata =
    `Metadata-Version: 2.1\nName: pythond\nVersion: ${w.version}\n` +
    `Summary: Persistent Python daemon with named sessions: pythond, pysh and pyctl in one binary\n` +
    `License: MIT\nRequires-Python: >=3.8\n` +
    (withClient ? clientDeps(w.root).map((d) => `Requires-Dist: ${d}\n`).join("") : "") +
    `Description-Content-Type: text/markdown\n\n${w.readme}`;
  const wheel = `Wheel-Version: 1.0\nGenerator: pythond scripts/release\nRoot-Is-Purelib: false\nTag: py3-none-${w.platform}\n`;
  files.push(
    { name: `${info}/METADATA`, mode: 0o644, data: enc.encode(metadata) },
    { name: `${info}/WHEEL`, mode: 0o644, data: enc.encode(wheel) },
    { name: `${info}/LICENSE`, mode: 0o644, data: enc.encode(w.license) },
  );
  const record = files.map((f) => {
    const plain = f.data instanceof Uint8Array ? f.data : f.data.plain;
    const digest = new Bun.CryptoHasher("sha256").update(plain).digest();
    return `${f.name},sha256=${b64url(digest)},${plain.length}\n`;
  });
  files.push({ name: `${info}/RECORD`, mode: 0o644, data: enc.encode(record.join("") + `${info}/RECORD,,\n`) });
  return {
    name: `pythond-${w.version}-py3-none-${w.platform}.whl`,
    bytes: await zip(files, w.mtime),
    withClient,
  };
}
