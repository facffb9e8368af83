/** The wire contract's parser and command table (REFERENCE "Wire protocol"). */
import { describe, expect, test } from "bun:test";
import { parseFrame, buildFrame } from "../../src/protocol/frame.ts";
import { toRequest, COMMANDS } from "../../src/protocol/commands.ts";
import { isValidName } from "../../src/protocol/names.ts";
import { PythondError } from "../../src/protocol/errors.ts";

const req = (text: string) => toRequest(parseFrame(text)!);
const errOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    return (e as PythondError).toFrame();
  }
  return "no error";
};

describe("parseFrame", () => {
  test("first line is the command, the rest is the body, raw", () => {
    expect(parseFrame("run work\nprint('a')\nprint(\"b\")")).toEqual({ cmd: "run", args: ["work"], body: "print('a')\nprint(\"b\")" });
  });
  test("a single trailing CRLF is tolerated", () => {
    expect(parseFrame("ls\r\n")).toEqual({ cmd: "ls", args: [], body: "" });
    expect(parseFrame("run w\nx\r\n")!.body).toBe("x");
    expect(parseFrame("run w\r\nx")!.args).toEqual(["w"]);
  });
  test("empty frames are ignored; a leading pysh/pyctl word is accepted", () => {
    expect(parseFrame("")).toBeNull();
    expect(parseFrame("   ")).toBeNull();
    expect(parseFrame("pysh run w\n1")).toEqual({ cmd: "run", args: ["w"], body: "1" });
    expect(parseFrame("pyctl stop")!.cmd).toBe("stop");
  });
  test("body is never touched (no JSON escaping, tabs and CR inside kept)", () => {
    expect(parseFrame("run w\n\ta\r\nb\\n")!.body).toBe("\ta\r\nb\\n");
  });
  test("buildFrame is the inverse", () => {
    const f = buildFrame("run", ["w", "--timeout", "3"], "x\ny");
    expect(parseFrame(f)).toEqual({ cmd: "run", args: ["w", "--timeout", "3"], body: "x\ny" });
  });
});

describe("toRequest", () => {
  test("unknown commands, including object-prototype names", () => {
    for (const c of ["frob", "constructor", "toString", "__proto__", "hasOwnProperty"]) {
      expect(errOf(() => req(c))).toBe(`ERR unknown: ${c}`);
    }
  });
  test("usage errors carry the synopsis", () => {
    expect(errOf(() => req("run"))).toBe("ERR usage: run <name>\\n<code>");
    expect(errOf(() => req("resize w 1"))).toBe("ERR usage: resize <name> <rows> <cols>");
    expect(errOf(() => req("ls a b"))).toBe("ERR usage: ls [node]");
    expect(errOf(() => req("new a b"))).toBe("ERR new takes a name only (got extra: b)");
    expect(errOf(() => req("run w --bogus\n1"))).toBe("ERR usage: run <name>\\n<code> (unknown option --bogus)");
    expect(errOf(() => req("run w --timeout"))).toBe("ERR usage: run <name>\\n<code>");
  });
  test("options", () => {
    expect(req("new w --replace --python /x/py").opts).toEqual({ replace: true, python: "/x/py" });
    expect(req("run w --timeout=2.5\n1").opts).toEqual({ timeout: "2.5" });
    expect(req("complete w --foo").args).toEqual(["w", "--foo"]); // completion text may look like a flag
  });
  test("every command has a synopsis that starts with its name", () => {
    for (const [name, spec] of Object.entries(COMMANDS)) expect(spec.synopsis.startsWith(name)).toBe(true);
  });
});

describe("names", () => {
  test("REFERENCE rules", () => {
    for (const ok of ["work", "a", "a-b_c9", "x".repeat(80), "console", "com10"]) expect(isValidName(ok)).toBe(true);
    for (const bad of ["", "Work", "a b", "a.b", "x".repeat(81), "con", "prn", "aux", "nul", "com0", "com9", "lpt1", "é"]) {
      expect(isValidName(bad)).toBe(false);
    }
  });
});
