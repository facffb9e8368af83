/**
 * Reading replies as data (src/client/replies.ts): both error forms (`ERR <message>` of pythond.1
 * and pythond.0.4, `ERR <code>: <message>` of a daemon that sends codes) give the same code, and
 * `ls` lines parse into sessions.
 */
import { expect, test } from "bun:test";
import { classifyError, parseLs } from "../../src/client/replies.ts";

test("error replies classify the same with or without a code", () => {
  const cases: Array<[string, string]> = [
    ["no session 'x' -- create it first with: new x", "no_session"],
    ["session 'x' already exists", "session_exists"],
    ["session 'x' died during the cell (exited with code 3)", "session_dead"],
    ["session 'x' is dead (killed by SIGKILL) -- start it again with: new x --replace", "session_dead"],
    ["auth failed", "auth_failed"],
    ["invalid session name", "invalid_name"],
    ["usage: poll <name> [cell_id]", "usage"],
    ["unknown: frobnicate", "unknown_command"],
    ["cell abc is still running after --timeout 1s", "timeout"],
    ["execution failed\nTraceback ...", "execution_failed"],
  ];
  for (const [message, code] of cases) {
    expect(classifyError(`ERR ${message}`)).toEqual({ code: code as never, message });
    expect(classifyError(`ERR ${code}: ${message}`)).toEqual({ code: code as never, message });
  }
  expect(classifyError('ERR {"cell_id":"abc","status":"error","output":"unknown cell"}').code).toBe("unknown_cell");
  expect(classifyError("ERR something new").code).toBe("internal");
  expect(classifyError("ERR nonsense_code: x").code).toBe("internal"); // not a code of ours: a message
});

test("ls lines parse into sessions", () => {
  const text = [
    "  work: alive pid=12 (pty)",
    "  boot: starting",
    "  gone: dead (exited with code 3)",
    "  old: incompatible pid=7 (worker protocol 0)",
    "  srv: -> 10.0.0.5:7399 tls (remote)",
  ].join("\n");
  expect(parseLs(text)).toEqual([
    { name: "work", state: "alive", pid: 12 },
    { name: "boot", state: "starting" },
    { name: "gone", state: "dead", detail: "exited with code 3" },
    { name: "old", state: "incompatible", pid: 7, detail: "worker protocol 0" },
    { name: "srv", state: "remote", detail: "10.0.0.5:7399 tls" },
  ]);
  expect(parseLs("(no sessions)")).toEqual([]);
});

test("on a connection known to carry codes, a tag is always the code", () => {
  expect(classifyError("ERR usage: --timeout takes seconds", true)).toEqual({ code: "usage", message: "--timeout takes seconds" });
  expect(classifyError("ERR usage: --timeout takes seconds")).toEqual({ code: "usage", message: "usage: --timeout takes seconds" });
});
