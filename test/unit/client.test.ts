/** Client-side pieces: code arguments, output newline rule, access-log escaping, worker framing. */
import { describe, expect, test } from "bun:test";
import { parseCodeArgs } from "../../src/cli/code-arg.ts";
import { escapeValue } from "../../src/daemon/access-log.ts";
import { encodeWorkerFrame, WorkerFrameReader } from "../../src/worker/wire.ts";

describe("parseCodeArgs", () => {
  test("name, options, then code joined with spaces", () => {
    expect(parseCodeArgs(["work", "--timeout", "3", "print(1)", "+", "2"], 1, ["timeout"])).toEqual({
      opts: { timeout: "3" },
      positional: ["work"],
      code: "print(1) + 2",
    });
  });
  test("code that looks like a flag is code", () => {
    expect(parseCodeArgs(["work", "-1", "+", "2"], 1, ["timeout"]).code).toBe("-1 + 2");
    expect(parseCodeArgs(["work", "--", "--timeout"], 1, ["timeout"]).code).toBe("--timeout");
    expect(parseCodeArgs(["work", "--x"], 1, ["timeout"]).code).toBe("--x");
  });
  test("no code", () => {
    expect(parseCodeArgs(["work"], 1).code).toBeNull();
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
  test("a header length past the frame is refused", () => {
    const bad = new Uint8Array(8);
    new DataView(bad.buffer).setUint32(0, 4);
    new DataView(bad.buffer).setUint32(4, 100);
    expect(() => new WorkerFrameReader().push(bad)).toThrow("bad frame from worker");
  });
});
