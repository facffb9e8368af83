/** File transfer engine (src/fleet/files): real files, real faults (tmpfs full, read-only, users). */
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, readSync, rmSync, statSync, symlinkSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { duplexPair, type Duplex, type Msg } from "../../src/fleet/duplex.ts";
import { receiveTree, type ReceiveOptions } from "../../src/fleet/files/receive.ts";
import { sendTree, type SendOptions } from "../../src/fleet/files/send.ts";
import { PythondError } from "../../src/protocol/errors.ts";
import { isRoot, runUnprivileged, tmpfs } from "../fixtures/fsfaults.ts";

const base = mkdtempSync(join(tmpdir(), "pysh-files-"));
afterAll(() => rmSync(base, { recursive: true, force: true }));
let n = 0;
const fresh = () => {
  const d = join(base, `d${n++}`);
  mkdirSync(d);
  return d;
};

async function transfer(src: string, dest: string, so: SendOptions = {}, ro: ReceiveOptions = {}, wrap = (d: Duplex) => d) {
  const [a, b] = duplexPair(1 << 20);
  const [s, r] = await Promise.allSettled([sendTree(wrap(a), src, so), receiveTree(b, dest, ro)]);
  return { s, r };
}

async function ok(src: string, dest: string, so: SendOptions = {}, ro: ReceiveOptions = {}) {
  const { s, r } = await transfer(src, dest, so, ro);
  if (s.status === "rejected") throw s.reason;
  if (r.status === "rejected") throw r.reason;
  return { sent: s.value, got: r.value };
}

async function bothFail(src: string, dest: string, so: SendOptions = {}, wrap?: (d: Duplex) => Duplex): Promise<PythondError> {
  const { s, r } = await transfer(src, dest, so, {}, wrap);
  expect(s.status).toBe("rejected");
  expect(r.status).toBe("rejected");
  const se = (s as PromiseRejectedResult).reason as PythondError;
  const re = (r as PromiseRejectedResult).reason as PythondError;
  expect(se).toBeInstanceOf(PythondError);
  // both ends fail with the same error: the one that happened (sender or receiver side)
  expect(se.code).toBe(re.code);
  expect(se.message).toBe(re.message);
  return se;
}

function sha(path: string): string {
  const h = new Bun.CryptoHasher("sha256");
  const fd = openSync(path, "r");
  const buf = Buffer.allocUnsafe(1 << 20);
  for (;;) {
    const k = readSync(fd, buf, 0, buf.length, null);
    if (k === 0) break;
    h.update(buf.subarray(0, k));
  }
  closeSync(fd);
  return h.digest("hex");
}

function randomFile(path: string, size: number, mode = 0o644): string {
  const fd = openSync(path, "w");
  let left = size;
  while (left > 0) {
    const k = Math.min(left, 65536);
    writeSync(fd, crypto.getRandomValues(new Uint8Array(k)));
    left -= k;
  }
  closeSync(fd);
  chmodSync(path, mode);
  return path;
}

const noParts = (dir: string) => readdirSync(dir).filter((f) => f.endsWith(".pysh-part"));

/** Cuts the link after `limit` bytes of file data (the transport closes, as a dropped link). */
function cutAfter(limit: number) {
  return (d: Duplex): Duplex => {
    let sent = 0;
    return {
      async send(m: Msg) {
        if (typeof m !== "string") {
          if (sent + m.length > limit) {
            d.close();
            throw new PythondError("transfer_failed", "link cut");
          }
          sent += m.length;
        }
        return d.send(m);
      },
      recv: () => d.recv(),
      close: () => d.close(),
    };
  };
}

describe("files: transfers", () => {
  test("a file into an existing directory (its name kept) and to a new name; mode bits kept", async () => {
    const src = randomFile(join(fresh(), "data.bin"), 3_000_000, 0o750);
    const dest = fresh();
    const { sent, got } = await ok(src, dest);
    expect(got.target).toBe(join(dest, "data.bin"));
    expect(sent.target).toBe(got.target);
    expect(sha(got.target)).toBe(sha(src));
    expect(statSync(got.target).mode & 0o7777).toBe(0o750);
    expect(got.bytes).toBe(3_000_000);
    const renamed = await ok(src, join(dest, "other.bin"));
    expect(renamed.got.target).toBe(join(dest, "other.bin"));
    expect(noParts(dest)).toEqual([]);
  });

  test("an empty file, and overwriting an existing file", async () => {
    const d = fresh();
    writeFileSync(join(d, "empty"), "");
    const dest = join(fresh(), "x");
    writeFileSync(dest, "old content");
    await ok(join(d, "empty"), dest);
    expect(readFileSync(dest, "utf8")).toBe("");
  });

  test("a directory with -r: nested dirs, symlinks, modes (read-only dirs too)", async () => {
    const src = join(fresh(), "tree");
    mkdirSync(join(src, "a/b"), { recursive: true });
    randomFile(join(src, "a/b/f1"), 1000, 0o600);
    randomFile(join(src, "run.sh"), 10, 0o755);
    writeFileSync(join(src, "a/notes.txt"), "hello");
    symlinkSync("a/notes.txt", join(src, "link"));
    mkdirSync(join(src, "ro"));
    writeFileSync(join(src, "ro/inside"), "x");
    chmodSync(join(src, "ro"), 0o555);
    const dest = fresh();
    const { got } = await ok(src, dest, { recursive: true });
    const t = join(dest, "tree");
    expect(got.target).toBe(t);
    expect(got.files).toBe(4);
    expect(sha(join(t, "a/b/f1"))).toBe(sha(join(src, "a/b/f1")));
    expect(statSync(join(t, "a/b/f1")).mode & 0o777).toBe(0o600);
    expect(statSync(join(t, "run.sh")).mode & 0o777).toBe(0o755);
    expect(readlinkSync(join(t, "link"))).toBe("a/notes.txt");
    expect(readFileSync(join(t, "link"), "utf8")).toBe("hello");
    expect(statSync(join(t, "ro")).mode & 0o777).toBe(0o555);
    expect(readFileSync(join(t, "ro/inside"), "utf8")).toBe("x");
    // again into a new name: the copy is that name
    const again = await ok(src, join(dest, "copy"), { recursive: true });
    expect(again.got.target).toBe(join(dest, "copy"));
    expect(readFileSync(join(dest, "copy/a/notes.txt"), "utf8")).toBe("hello");
    chmodSync(join(src, "ro"), 0o755);
  });

  test("stdin to a file, and a file to stdout", async () => {
    const dest = join(fresh(), "from-stdin");
    async function* chunks() {
      for (let i = 0; i < 10; i++) yield new Uint8Array(100_000).fill(i);
    }
    const { got } = await ok("-", dest, { stdin: chunks() });
    expect(statSync(dest).size).toBe(1_000_000);
    expect(got.files).toBe(1);
    const out: Uint8Array[] = [];
    await ok(dest, "-", {}, { stdout: (b) => void out.push(b) });
    expect(Buffer.concat(out).equals(readFileSync(dest))).toBe(true);
  });
});

describe("files: clear errors", () => {
  test("no such file", async () => {
    const e = await bothFail(join(base, "nope.txt"), fresh());
    expect(e.code).toBe("not_found");
    expect(e.message).toBe(`no such file or directory: ${join(base, "nope.txt")}`);
  });

  test("a directory without -r", async () => {
    const src = fresh();
    const e = await bothFail(src, fresh());
    expect(e.code).toBe("is_directory");
    expect(e.message).toBe(`${src} is a directory (use -r)`);
  });

  test("the destination's parent does not exist; a directory onto a file", async () => {
    const src = randomFile(join(fresh(), "f"), 10);
    const e = await bothFail(src, join(base, "no/such/dir/f"));
    expect(e.message).toBe(`no such directory: ${join(base, "no/such/dir")}`);
    const file = randomFile(join(fresh(), "plain"), 10);
    const e2 = await bothFail(fresh(), file, { recursive: true });
    expect(e2.code).toBe("not_directory");
  });

  test("a read-only target directory (read-only mount): nothing written", async () => {
    using m = tmpfs("1m", true);
    if (!m) return void console.warn("cannot mount here: covered by the unprivileged test below");
    const e = await bothFail(randomFile(join(fresh(), "f"), 1000), m.path);
    expect(e.code).toBe("permission_denied");
    expect(e.message).toBe(`read-only file system: cannot write ${join(m.path, "f")}`);
  });

  test("no permission (as an unprivileged user): a 0555 target directory, an unreadable source", () => {
    const dir = fresh();
    chmodSync(dir, 0o755);
    chmodSync(base, 0o755);
    mkdirSync(join(dir, "ro"), { mode: 0o555 });
    chmodSync(join(dir, "ro"), 0o555);
    writeFileSync(join(dir, "secret"), "s");
    chmodSync(join(dir, "secret"), 0o600);
    writeFileSync(join(dir, "readable"), "r");
    chmodSync(join(dir, "readable"), 0o644);
    const script = (src: string, dest: string) => `
      const { duplexPair } = await import(process.env.REPO + "/src/fleet/duplex.ts");
      const { sendTree } = await import(process.env.REPO + "/src/fleet/files/send.ts");
      const { receiveTree } = await import(process.env.REPO + "/src/fleet/files/receive.ts");
      const [a, b] = duplexPair();
      const r = await Promise.allSettled([sendTree(a, ${JSON.stringify(src)}), receiveTree(b, ${JSON.stringify(dest)})]);
      console.log(JSON.stringify(r.map((x) => x.status === "rejected" ? [x.reason.code, x.reason.message] : "ok")));`;
    const w = runUnprivileged(script(join(dir, "readable"), join(dir, "ro")), dir);
    expect(w.stderr).toBe("");
    const wr = JSON.parse(w.stdout);
    expect(wr[0]).toEqual(["permission_denied", `permission denied writing ${join(dir, "ro", "readable")}`]);
    expect(wr[1]).toEqual(wr[0]);
    expect(readdirSync(join(dir, "ro"))).toEqual([]);
    const rd = JSON.parse(runUnprivileged(script(join(dir, "secret"), join(dir, "ro")), dir).stdout);
    expect(rd[0]).toEqual(["permission_denied", `permission denied reading ${join(dir, "secret")}`]);
    expect(rd[1]).toEqual(rd[0]);
  });

  test("disk full on the receiving side: no_space, nothing under the final name, no part file", async () => {
    using m = tmpfs("1m");
    if (!m) return void console.warn("cannot mount a tmpfs here: disk full not exercised");
    const src = randomFile(join(fresh(), "big"), 3_000_000);
    const e = await bothFail(src, m.path);
    expect(e.code).toBe("no_space");
    expect(e.message).toBe(`no space left on the device writing ${join(m.path, "big")}`);
    expect(readdirSync(m.path)).toEqual([]);
  });

  test("disk full with several writes in flight (64 KiB chunks): no_space, nothing left behind", async () => {
    using m = tmpfs("1m");
    if (!m) return void console.warn("cannot mount a tmpfs here: disk full not exercised");
    const src = randomFile(join(fresh(), "big"), 3_000_000);
    const e = await bothFail(src, m.path, { chunk: 64 << 10 });
    expect(e.code).toBe("no_space");
    expect(readdirSync(m.path)).toEqual([]);
  });

  test("a checksum mismatch (a byte flipped in transit): refused, nothing kept", async () => {
    const src = randomFile(join(fresh(), "f"), 2_000_000);
    const dest = fresh();
    let chunks = 0;
    const flip = (d: Duplex): Duplex => ({
      send(m) {
        if (typeof m !== "string" && ++chunks === 3) {
          const c = Uint8Array.from(m);
          c[100] = c[100]! ^ 0xff;
          return d.send(c);
        }
        return d.send(m);
      },
      recv: () => d.recv(),
      close: () => d.close(),
    });
    const e = await bothFail(src, dest, { chunk: 256 << 10 }, flip); // the third of eight chunks
    expect(e.code).toBe("checksum_mismatch");
    expect(e.message).toContain(`checksum mismatch for ${join(dest, "f")}`);
    expect(readdirSync(dest)).toEqual([]);
  });

  test("paths from the sender never climb out or go through a symlink", async () => {
    const dest = fresh();
    const outside = fresh();
    const [a, b] = duplexPair();
    const got = receiveTree(b, dest);
    const say = (m: object) => a.send(JSON.stringify(m));
    await say({ t: "root", kind: "dir", name: "t", recursive: true });
    await a.recv();
    await say({ t: "entry", kind: "dir", path: "", mode: 0o755 });
    await a.recv();
    await say({ t: "entry", kind: "dir", path: "../../escape", mode: 0o755 });
    await a.recv();
    expect(existsSync(join(dest, "t/escape"))).toBe(true);
    await say({ t: "entry", kind: "symlink", path: "l", target: outside });
    await a.recv();
    await say({ t: "entry", kind: "file", path: "l/evil", size: 1, mode: 0o644, mtime: 0 });
    expect(await a.recv()).toContain("refusing to write through");
    await expect(got).rejects.toThrow("refusing to write through");
    expect(readdirSync(outside)).toEqual([]);
  });
});

describe("files: resume and size", () => {
  test("an interrupted transfer resumes from what arrived, and says so", async () => {
    const src = randomFile(join(fresh(), "f"), 5_000_000, 0o640);
    const dest = fresh();
    const { s, r } = await transfer(src, dest, {}, {}, cutAfter(2_000_000));
    expect(s.status).toBe("rejected");
    expect((r as PromiseRejectedResult).reason.message).toMatch(/cut off after \d+ bytes \(run it again to resume\)/);
    expect(existsSync(join(dest, "f"))).toBe(false); // nothing under the final name
    const parts = noParts(dest);
    expect(parts.length).toBe(1);
    const had = statSync(join(dest, parts[0]!)).size;
    expect(had).toBeGreaterThan(0);
    const { sent, got } = await ok(src, dest);
    expect(got.resumed).toBe(had);
    expect(got.resumedFiles).toEqual([join(dest, "f")]);
    expect(sent.resumed).toBe(had);
    expect(got.bytes).toBe(5_000_000 - had);
    expect(sha(join(dest, "f"))).toBe(sha(src));
    expect(statSync(join(dest, "f")).mode & 0o777).toBe(0o640);
    expect(noParts(dest)).toEqual([]);
  });

  test("cut off with writes in flight: every byte that arrived is in the part file, exact, before the error", async () => {
    const src = randomFile(join(fresh(), "f"), 3_000_000);
    const dest = fresh();
    const { r } = await transfer(src, dest, { chunk: 64 << 10 }, {}, cutAfter(1_500_000));
    const n = Number(/cut off after (\d+) bytes/.exec((r as PromiseRejectedResult).reason.message)![1]);
    expect(n).toBeGreaterThan(1_000_000);
    const part = join(dest, noParts(dest)[0]!);
    expect(statSync(part).size).toBe(n);
    expect(readFileSync(part).equals(readFileSync(src).subarray(0, n))).toBe(true);
  });

  test("a damaged part file fails the checksum, is discarded, and the next run succeeds", async () => {
    const src = randomFile(join(fresh(), "f"), 1_000_000);
    const dest = fresh();
    await transfer(src, dest, {}, {}, cutAfter(500_000));
    const part = join(dest, noParts(dest)[0]!);
    const fd = openSync(part, "r+");
    writeSync(fd, Buffer.from("garbage"), 0, 7, 10);
    closeSync(fd);
    const e = await bothFail(src, dest);
    expect(e.code).toBe("checksum_mismatch");
    expect(noParts(dest)).toEqual([]);
    await ok(src, dest);
    expect(sha(join(dest, "f"))).toBe(sha(src));
  });

  test("resume off: starts from scratch", async () => {
    const src = randomFile(join(fresh(), "f"), 1_000_000);
    const dest = fresh();
    await transfer(src, dest, {}, {}, cutAfter(500_000));
    const { got } = await ok(src, dest, {}, { resume: false });
    expect(got.resumed).toBe(0);
    expect(sha(join(dest, "f"))).toBe(sha(src));
  });

  test("1 GiB round trip: SHA-256 equal, memory bounded", async () => {
    const dir = fresh();
    const src = join(dir, "big");
    const fd = openSync(src, "w");
    const block = crypto.getRandomValues(new Uint8Array(1 << 20));
    for (let i = 0; i < 1024; i++) {
      block[0] = i & 0xff;
      block[1] = i >> 8;
      writeSync(fd, block);
    }
    closeSync(fd);
    Bun.gc(true);
    const rss0 = process.memoryUsage().rss;
    let peak = 0;
    let k = 0;
    const onProgress = () => {
      if (++k % 256 === 0) peak = Math.max(peak, process.memoryUsage().rss - rss0);
    };
    const mid = fresh();
    await ok(src, mid, { onProgress });
    const back = fresh();
    await ok(join(mid, "big"), back, {}, { onProgress });
    expect(statSync(join(back, "big")).size).toBe(1 << 30);
    expect(sha(join(back, "big"))).toBe(sha(src));
    console.log(`1 GiB round trip: peak RSS growth ${(peak / 1048576).toFixed(1)} MiB`);
    expect(peak).toBeLessThan(256 << 20);
    rmSync(dir, { recursive: true });
    rmSync(mid, { recursive: true });
    rmSync(back, { recursive: true });
  }, 120_000);
});
