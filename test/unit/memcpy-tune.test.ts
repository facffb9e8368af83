/**
 * The daemons' start-again with glibc's rep-movsb threshold raised (src/daemon/memcpy-tune.ts):
 * when it is wanted, the environment it starts again with, and the environment put back after.
 * The real execve is proven end to end (test/e2e/memcpy-tune.test.ts).
 */
import { describe, expect, test } from "bun:test";
import { restoreEnv, tunedEnv, wantsMemcpyTune } from "../../src/daemon/memcpy-tune.ts";

const linuxX64 = process.platform === "linux" && process.arch === "x64";
const yes = () => true;
const no = () => false;

describe("memcpy tune", () => {
  test("wanted on AMD x86-64 Linux with glibc only, once, unless the user set the tunable or turned it off", () => {
    expect(wantsMemcpyTune({}, yes, yes)).toBe(linuxX64);
    expect(wantsMemcpyTune({}, no)).toBe(false);
    expect(wantsMemcpyTune({}, yes, no)).toBe(false); // musl: no glibc to tell
    expect(wantsMemcpyTune({ PYTHOND_MEMCPY_TUNED: "1" }, yes, yes)).toBe(false); // already started again
    expect(wantsMemcpyTune({ PYTHOND_TUNE_MEMCPY: "0" }, yes, yes)).toBe(false);
    expect(wantsMemcpyTune({ GLIBC_TUNABLES: "glibc.cpu.x86_rep_movsb_threshold=4096" }, yes, yes)).toBe(false);
    expect(wantsMemcpyTune({ GLIBC_TUNABLES: "glibc.malloc.check=0" }, yes, yes)).toBe(linuxX64);
  });

  test("the user's own GLIBC_TUNABLES is kept (ours appended) and put back exactly after", () => {
    for (const user of [undefined, "", "glibc.malloc.check=0"]) {
      const env: NodeJS.ProcessEnv = { PATH: "/bin", ...(user === undefined ? {} : { GLIBC_TUNABLES: user }) };
      const t = tunedEnv(env);
      expect(t.GLIBC_TUNABLES).toBe(user ? `${user}:glibc.cpu.x86_rep_movsb_threshold=1073741824` : "glibc.cpu.x86_rep_movsb_threshold=1073741824");
      expect(t.PYTHOND_MEMCPY_TUNED).toBe("1");
      restoreEnv(t);
      expect(t).toEqual(env);
    }
    const untouched: NodeJS.ProcessEnv = { GLIBC_TUNABLES: "x" };
    restoreEnv(untouched); // not a started-again process: nothing to put back
    expect(untouched).toEqual({ GLIBC_TUNABLES: "x" });
  });
});
