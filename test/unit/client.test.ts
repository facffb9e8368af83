/** Client-side pieces: code arguments, output newline rule, access-log escaping, worker framing. */
import { describe, expect, test } from "bun:test";
import { PYSH } from "../../src/cli/pysh-commands.ts";
import { closest, parseArgs } from "../../src/cli/spec.ts";
import { escapeValue } from "../../src/daemon/access-log.ts";
import { encodeWorkerFrame, WorkerFrameReader } from "../../src/link/frame.ts";

const RUN = PYSH.commands.find((c) => c.name === "run")!;
const parse = (argv: string[]) => parseArgs("pysh", RUN, argv);

describe("parseArgs (code commands)", () => {
  test("name, options, then code joined with spaces", () => {
    expect(parse(["work", "--timeout", "3", "print(1)", "+", "2"])).toMatchObject({
      opts: { timeout: "3" },
      positional: ["work"],
      code: "print(1) + 2",
      help: false,
    });
    expect(parse(["work", "--timeout=3", "x"]).opts).toEqual({ timeout: "3" });
  });
  test("code that looks like a flag is code; an unknown --option is refused; -- ends options", () => {
    expect(parse(["work", "-1", "+", "2"]).code).toBe("-1 + 2");
    expect(parse(["work", "--", "--timeout"]).code).toBe("--timeout");
    expect(() => parse(["work", "--x"])).toThrow("unknown option --x for pysh run; valid: --timeout, --selector, --all, --session, --max-concurrency, --json, --help");
    expect(() => parse(["work", "--timout", "3", "x"])).toThrow("(did you mean --timeout?)");
    expect(parse(["work", "print('--help')"]).code).toBe("print('--help')");
    expect(parse(["work", "--help"]).help).toBe(true);
  });
  test("no code; missing name; missing value", () => {
    expect(parse(["work"]).code).toBeNull();
    expect(() => parse([])).toThrow("usage: pysh run <name> [--timeout S] [--selector K=V,…] [--all] [--session NAME] [--max-concurrency N] [--json] <code|@file|->");
    expect(() => parse(["work", "--timeout"])).toThrow("--timeout needs a value (S)");
  });
  test("did you mean: edit distance up to 2", () => {
    expect(closest("keep-session", ["keep-sessions"])).toBe("keep-sessions");
    expect(closest("zzz", ["keep-sessions"])).toBeUndefined();
  });
});

describe("escapeValue", () => {
  test("no spaces, newlines or = injected", () => {
    expect(escapeValue("a b\nc=d")).toBe("a%20b%0Ac%3Dd");
    expect(escapeValue("/tmp/x.sock")).toBe("/tmp/x.sock");
    expect(escapeValue("é")).toBe("%C3%A9");
  });
});

describe("worker framing", () => {
  test("frames split anywhere are reassembled; bodies are raw bytes", () => {
    const body = new Uint8Array(70_000).map((_, i) => i & 0xff);
    const a = encodeWorkerFrame({ op: "out", rid: 1, cell: "abc" }, body);
    const b = encodeWorkerFrame({ op: "end", rid: 1, ok: true });
    const all = new Uint8Array([...a, ...b]);
    const r = new WorkerFrameReader();
    const got = [];
    for (let i = 0; i < all.length; i += 997) got.push(...r.push(all.subarray(i, i + 997)));
    expect(got.map((f) => f.header.op)).toEqual(["out", "end"]);
    expect(got[0]!.body).toEqual(body);
    expect(got[1]!.body.length).toBe(0);
  });
  test("big frames (own buffer) and small ones mixed, split anywhere or whole in one push", () => {
    const big = (n: number, seed: number) => new Uint8Array(n).map((_, i) => (i * seed) & 0xff);
    const parts = [
      encodeWorkerFrame({ op: "start", rid: 1, cell: "c" }),
      encodeWorkerFrame({ op: "out", rid: 1, cell: "c" }, big(300_000, 7)),
      encodeWorkerFrame({ op: "out", rid: 1, cell: "c" }, big(10, 3)),
      encodeWorkerFrame({ op: "out", rid: 1, cell: "c" }, big(65_536, 5)),
      encodeWorkerFrame({ op: "end", rid: 1, ok: true }),
    ];
    const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of parts) {
      all.set(p, o);
      o += p.length;
    }
    for (const step of [all.length, 1, 7, 4096, 65_536, 100_003]) {
      const r = new WorkerFrameReader();
      const got = [];
      for (let i = 0; i < all.length; i += step) got.push(...r.push(all.subarray(i, i + step)));
      expect(got.map((f) => f.header.op)).toEqual(["start", "out", "out", "out", "end"]);
      expect(got[1]!.body).toEqual(big(300_000, 7));
      expect(got[2]!.body).toEqual(big(10, 3));
      expect(got[3]!.body).toEqual(big(65_536, 5));
    }
  });
  test("a length past any real frame is refused", () => {
    const bad = new Uint8Array(8);
    new DataView(bad.buffer).setUint32(0, 0xffffff00);
    expect(() => new WorkerFrameReader().push(bad)).toThrow("bad frame from worker");
  });
  test("a header length past the frame is refused", () => {
    const bad = new Uint8Array(8);
    new DataView(bad.buffer).setUint32(0, 4);
    new DataView(bad.buffer).setUint32(4, 100);
    expect(() => new WorkerFrameReader().push(bad)).toThrow("bad frame from worker");
  });
});
