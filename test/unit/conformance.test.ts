/**
 * The wire contract, walked whole: every command of the table (parses from its own synopsis,
 * has a handler, says what it targets and who may call it), every reply builder (and the parser
 * reading it back, with and without codes), the worker protocol (the TypeScript mirror agrees
 * with the Python module that holds the version, and the worker serves exactly the listed ops),
 * and no reply literal anywhere outside src/protocol/.
 */
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { CLIENT_CALLERS, COMMANDS, toRequest, type CommandName, type CommandSpec } from "../../src/protocol/commands.ts";
import { ERROR_CODES, PythondError, type ErrorCode } from "../../src/protocol/errors.ts";
import { buildFrame, decodePathArg, encodePathArg, parseFrame } from "../../src/protocol/frame.ts";
import {
  ATTACH,
  AUTH_REJECTION,
  cellIdOf,
  cellReply,
  detachedFrom,
  endsDetached,
  errReply,
  executionFailed,
  isError,
  okReply,
  parseError,
  plainError,
  resizedReply,
} from "../../src/protocol/replies.ts";
import { chooseSubprotocol, CLIENT_OFFER, SUBPROTOCOL, SUBPROTOCOL_CODES, SUBPROTOCOL_LEGACY, LINK_SUBPROTOCOL } from "../../src/protocol/version.ts";
import { CORE_OPS, TERMINAL_OPS, WORKER_FRAMES, WORKER_OPS, WORKER_PROTOCOL } from "../../src/protocol/worker.ts";
import { HANDLERS } from "../../src/daemon/dispatch.ts";

const ROOT = join(import.meta.dir, "..", "..");

/** A frame that fills a synopsis: `<name>` -> w, `[x]` dropped, options with a value given one. */
function fromSynopsis(spec: CommandSpec, cmd: string): string {
  const words = spec.synopsis.replace(/\\n<code>/, "").replace(/ \[[^\]]*\]/g, "").split(" ").slice(1);
  const args = words.map((w) => (w === "<name>" ? "w" : w === "<rows>" || w === "<cols>" ? "24" : w.replace(/[<>]/g, "")));
  return buildFrame(cmd, args, spec.synopsis.includes("\\n<code>") ? "1" : undefined);
}

describe("the command table", () => {
  for (const [cmd, spec] of Object.entries(COMMANDS) as Array<[CommandName, CommandSpec]>) {
    test(cmd, () => {
      const req = toRequest(parseFrame(fromSynopsis(spec, cmd))!);
      expect(req.cmd).toBe(cmd);
      expect(req.args.length).toBeGreaterThanOrEqual(spec.min);
      expect(typeof HANDLERS[cmd]).toBe("function");
      const target = spec.target ?? "none";
      expect(["session", "none"]).toContain(target);
      if (target === "session") {
        expect(["run", "request", "attach"]).toContain(spec.via!);
        expect(spec.synopsis.split(/ |\\n/)[1]).toBe("<name>");
      } else expect(spec.via).toBeUndefined();
      for (const c of spec.callers ?? CLIENT_CALLERS) expect(["local", "remote", "hub", "node"]).toContain(c);
      // `run`'s synopsis is the original's, byte for byte in its usage error; --timeout is ours
      if (cmd !== "run") for (const o of [...(spec.valued ?? []), ...(spec.switches ?? [])]) expect(spec.synopsis).toContain(`--${o}`);
    });
  }
  test("no command is open to nodes by default; the daemon's own management is its owner's (local or authenticated remote), never a hub's", () => {
    expect(CLIENT_CALLERS).not.toContain("node");
    for (const cmd of ["stop", "restart", "connect", "disconnect"] as const) expect(COMMANDS[cmd].callers).toEqual(["local", "remote"]);
    expect(COMMANDS["node-forget"].callers).toEqual(["local"]);
  });
});

describe("replies", () => {
  const codes: ErrorCode[] = Object.keys(ERROR_CODES) as ErrorCode[];
  test("every error code survives the trip with codes, and reads as the bare message without", () => {
    for (const code of codes) {
      const e = new PythondError(code, "it: went wrong\nline two");
      const coded = errReply(e, true);
      expect(coded).toBe(`ERR ${code}: it: went wrong\nline two`);
      expect(parseError(coded, true).code).toBe(code);
      expect(parseError(coded, true).message).toBe(e.message);
      expect(plainError(coded, true)).toBe(`ERR ${e.message}`);
      const plain = errReply(e, false);
      expect(plain).toBe(`ERR ${e.message}`);
      expect(parseError(plain, false).message).toBe(e.message);
      expect(isError(coded) && isError(plain)).toBe(true);
    }
    // without codes negotiated, a message that starts like a code is never mistaken for one
    expect(parseError("ERR usage: run <name>", false)).toMatchObject({ code: "execution_failed", message: "usage: run <name>" });
  });
  test("OK, CELL, execution failed, attach frames", () => {
    expect(okReply()).toBe("OK");
    expect(okReply("killed w")).toBe("OK killed w");
    expect(isError(okReply("x"))).toBe(false);
    expect(cellIdOf(cellReply("abc123"))).toBe("abc123");
    expect(cellIdOf("OK")).toBeUndefined();
    expect(executionFailed("Traceback", false)).toBe("ERR execution failed\nTraceback");
    expect(executionFailed("Traceback", true)).toBe("ERR execution_failed: execution failed\nTraceback");
    expect(ATTACH).toEqual({ attached: "OK attached", detached: "OK detached", detachKey: 0x1d });
    for (const c of [false, true]) {
      const d = detachedFrom("w", "the session ended", c);
      expect(endsDetached(d, c)).toBe(true);
      expect(plainError(d, c)).toBe("ERR detached from session 'w': the session ended");
    }
    expect(endsDetached(ATTACH.detached, false)).toBe(true);
    expect(endsDetached("ERR not attached", false)).toBe(false);
    expect(resizedReply(24, 80)).toBe("OK resized 24x80");
    for (const r of Object.values(AUTH_REJECTION)) expect(r).toStartWith("ERR auth failed");
  });
  test("paths travel percent-encoded, and a plain path passes", () => {
    for (const p of ["/tmp/my dir", "/a%b", "C:\\Users\\x y", "/naïve/π"]) expect(decodePathArg(encodePathArg(p))).toBe(p);
    expect(decodePathArg("/plain/path")).toBe("/plain/path");
    expect(decodePathArg("/100%")).toBe("/100%");
    expect(encodePathArg("/a b")).not.toContain(" ");
  });
  test("subprotocols: codes preferred, the original's and the link's accepted", () => {
    expect(chooseSubprotocol(CLIENT_OFFER)).toBe(SUBPROTOCOL_CODES);
    expect(chooseSubprotocol([SUBPROTOCOL])).toBe(SUBPROTOCOL);
    expect(chooseSubprotocol([SUBPROTOCOL_LEGACY])).toBe(SUBPROTOCOL_LEGACY);
    expect(chooseSubprotocol([LINK_SUBPROTOCOL])).toBe(LINK_SUBPROTOCOL);
    expect(chooseSubprotocol(["other"])).toBe("");
  });
});

describe("the worker protocol", () => {
  const py = (f: string) => readFileSync(join(ROOT, "src/worker/py/_pythond", f), "utf8");
  test("one version, in protocol.py; TypeScript reads it from there", () => {
    expect(WORKER_PROTOCOL).toBeGreaterThan(0);
    expect(py("protocol.py")).toContain(`WORKER_PROTOCOL = ${WORKER_PROTOCOL}\n`);
    for (const f of ["ops.py", "server.py", "wire.py", "terminal.py"]) expect(py(f)).not.toMatch(/^WORKER_PROTOCOL = /m);
  });
  test("the worker's handler tables are exactly the listed ops", () => {
    const table = (src: string, name: string) => {
      const m = new RegExp(`^${name} = \\{([^}]*)\\}`, "m").exec(src);
      return [...(m?.[1] ?? "").matchAll(/"([a-z]+)":/g)].map((x) => x[1]).sort();
    };
    expect(table(py("ops.py"), "CORE_HANDLERS")).toEqual([...CORE_OPS].sort());
    expect(table(py("terminal.py"), "HANDLERS")).toEqual([...TERMINAL_OPS].sort());
    expect(WORKER_FRAMES).toContain("reply");
    expect<string[]>([...WORKER_OPS].sort()).toEqual(["hello", ...CORE_OPS, ...TERMINAL_OPS].sort());
    expect(py("ops.py")).not.toContain("HANDLERS.update");
    expect(py("terminal.py")).not.toContain("handlers.update");
  });
});

describe("no reply literal outside src/protocol/", () => {
  test("OK / ERR / CELL frames are built by replies.ts and errors.ts only", () => {
    const files: string[] = [];
    const walk = (dir: string) => {
      for (const f of readdirSync(dir)) {
        const p = join(dir, f);
        if (statSync(p).isDirectory()) walk(p);
        else if (p.endsWith(".ts")) files.push(p);
      }
    };
    walk(join(ROOT, "src"));
    const offenders: string[] = [];
    for (const f of files) {
      if (f.includes("/src/protocol/")) continue;
      readFileSync(f, "utf8").split("\n").forEach((line, i) => {
        const code = line.trim();
        if (code.startsWith("*") || code.startsWith("//") || code.startsWith("/*")) return;
        if (/["'`](OK|ERR|CELL)[ "'`]/.test(code.replace(/\/\/.*$/, ""))) offenders.push(`${f.slice(ROOT.length + 1)}:${i + 1}: ${code}`);
      });
    }
    expect(offenders).toEqual([]);
  });
});
