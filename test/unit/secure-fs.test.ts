/** src/secure-fs.ts: what a directory must be before it is used, and what is refused (and how it is said). */
import { expect, test } from "bun:test";
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkAncestors, checkDir, checkSocketDir, privateDir } from "../../src/secure-fs.ts";

function scratch() {
  const dir = mkdtempSync(join(tmpdir(), "pyd-sfs-"));
  return { dir, [Symbol.dispose]: () => rmSync(dir, { recursive: true, force: true }) };
}

test("privateDir creates 0700 (parents too), tightens a readable one of ours, returns the path", () => {
  using s = scratch();
  const p = join(s.dir, "a", "b");
  expect(privateDir(p)).toBe(p);
  expect(statSync(p).mode & 0o777).toBe(0o700);
  const open = join(s.dir, "open");
  mkdirSync(open);
  chmodSync(open, 0o755);
  privateDir(open);
  expect(statSync(open).mode & 0o777).toBe(0o700);
});

test("refused, never chmod'ed: writable by others, a link, not a directory, another user's", () => {
  using s = scratch();
  const w = join(s.dir, "w");
  mkdirSync(w);
  chmodSync(w, 0o777);
  expect(() => privateDir(w)).toThrow(`refusing ${w}: group or others can write to it (owner uid ${process.getuid!()}, mode 0777)`);
  expect(statSync(w).mode & 0o777).toBe(0o777);
  const l = join(s.dir, "l");
  symlinkSync(join(s.dir, "a-target"), l);
  expect(() => checkDir(l)).toThrow(`refusing ${l}: it is a symbolic link`);
  const f = join(s.dir, "f");
  writeFileSync(f, "");
  expect(() => checkDir(f)).toThrow("it is not a directory");
  if (process.getuid!() === 0) {
    const o = join(s.dir, "o");
    mkdirSync(o, { mode: 0o700 });
    chownSync(o, 65534, 65534);
    expect(() => privateDir(o)).toThrow(`refusing ${o}: it belongs to another user (owner uid 65534, mode 0700)`);
  }
  expect(checkDir(join(s.dir, "missing"))).toBeNull();
});

test("ancestors: a directory above that others may write to (not sticky) is refused; sticky /tmp is fine", () => {
  using s = scratch();
  const open = join(s.dir, "open");
  mkdirSync(join(open, "mine"), { recursive: true, mode: 0o700 });
  chmodSync(open, 0o777);
  expect(() => checkAncestors(join(open, "mine"))).toThrow(`the directory ${open} above it (owner uid ${process.getuid!()}, mode 0777) lets another user replace it`);
  chmodSync(open, 0o1777);
  expect(() => checkAncestors(join(open, "mine"))).not.toThrow();
});

test("the socket's directory: a root-owned sticky one only when the user named the socket", () => {
  using s = scratch();
  const sticky = join(s.dir, "sticky");
  mkdirSync(sticky);
  chmodSync(sticky, 0o1777);
  if (process.getuid!() === 0) expect(checkSocketDir(sticky, true)).not.toBeNull();
  expect(() => checkSocketDir(sticky, false)).toThrow("group or others can write to it");
});
