/** Pure pieces of the CLI and the daemon's output: compact log lines, levels, ls --json, exit codes. */
import { describe, expect, test } from "bun:test";
import { compact, logLevelFrom } from "../../src/daemon/log-out.ts";
import { parseLs } from "../../src/cli/ls-json.ts";
import { exitStatus } from "../../src/cli/pysh-run.ts";

describe("daemon output", () => {
  test("one compact line per command; connect/command lines dropped; failures marked", () => {
    const l = (s: string) => `ACCESS ts=2026-12-03T10:00:00.000Z ${s}`;
    expect(compact(l("event=result conn_id=3 peer= cmd=run session=work status=ok body_bytes=5"))).toEqual({ text: "run work ok", bad: false });
    expect(compact(l("event=result conn_id=3 peer=10.0.0.2:5000 cmd=kill session=x status=error body_bytes="))).toEqual({
      text: "kill x error from 10.0.0.2:5000",
      bad: true,
    });
    expect(compact(l("event=connect conn_id=3 peer= cmd= session= status= body_bytes="))).toBeNull();
    expect(compact(l("event=command conn_id=3 peer= cmd=run session=work status= body_bytes=5"))).toBeNull();
    expect(compact(l("event=auth conn_id=4 peer=1.2.3.4:9 cmd= session= status=error body_bytes= reason=bad_token"))).toEqual({
      text: "auth failed from 1.2.3.4:9: bad_token",
      bad: true,
    });
    expect(compact(l("event=session conn_id= peer= cmd= session=w status=ok body_bytes= event_detail=adopted%20worker%20pid%205"))?.text).toBe(
      "session w: adopted worker pid 5",
    );
  });
  test("levels", () => {
    expect(logLevelFrom(undefined, false)).toBe("info");
    expect(logLevelFrom(undefined, true)).toBe("warn");
    expect(logLevelFrom("debug", true)).toBe("debug");
    expect(() => logLevelFrom("loud", false)).toThrow("--log-level takes error, warn, info or debug");
  });
});

describe("pysh", () => {
  test("ls --json reads every line form of the ls reply", () => {
    expect(parseLs("(no sessions)")).toEqual([]);
    expect(
      parseLs(
        "  a: alive pid=12 (pty)\n  b: starting\n  c: dead (worker died while the daemon was down)\n  d: incompatible pid=7 (worker protocol 0)\n  srv: -> 10.0.0.5:7399 tls (remote)",
      ),
    ).toEqual([
      { name: "a", state: "alive", pid: 12 },
      { name: "b", state: "starting" },
      { name: "c", state: "dead", reason: "worker died while the daemon was down" },
      { name: "d", state: "incompatible", pid: 7, reason: "worker protocol 0" },
      { name: "srv", state: "remote", remote: "10.0.0.5:7399 tls" },
    ]);
  });
  test("exit status as python -c", () => {
    expect(exitStatus("OK")).toEqual({ code: 0, quiet: true });
    expect(exitStatus("ERR execution failed\nexit(3)")).toEqual({ code: 3, quiet: false });
    expect(exitStatus("ERR execution failed\nexit(0)")).toEqual({ code: 0, quiet: true });
    expect(exitStatus("ERR execution failed\nexit(bye)")).toEqual({ code: 1, quiet: false });
    expect(exitStatus("ERR execution failed\nTraceback ...\nexit(3)")).toEqual({ code: 1, quiet: false });
    expect(exitStatus("ERR no session 'x'")).toEqual({ code: 1, quiet: false });
  });
});
