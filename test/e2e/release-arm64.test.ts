/**
 * The linux-arm64 release build run for real, emulated: qemu-user (Debian's qemu-user-static,
 * with the arm64 C library of libc6-arm64-cross) runs the arm64 daemon; sessions are the
 * machine's own python3, as on any host; the arm64 binary's pysh role runs a cell through it.
 * Slow (JIT under emulation), so only a few commands.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { exec, makeEnv, PYSH } from "./harness.ts";
import { BinDaemon, ensureRelease, RELEASE, VERSION } from "./release-harness.ts";

const SYSROOT = "/usr/aarch64-linux-gnu";
const BIN = join(RELEASE, `pythond-${VERSION}-linux-arm64`);
let QEMU: string[];

beforeAll(async () => {
  const qemu = Bun.which("qemu-aarch64-static");
  if (!qemu || !existsSync(join(SYSROOT, "lib/ld-linux-aarch64.so.1"))) {
    throw new Error("qemu-aarch64-static or the arm64 C library is missing: run `sh scripts/setup-tools.sh` as root (npm run setup does)");
  }
  QEMU = [qemu, "-L", SYSROOT];
  await ensureRelease();
}, 300_000);

describe("linux-arm64 under qemu-user", () => {
  test("--version names the arm64 target; the daemon serves a session; its pysh runs a cell", async () => {
    const e = makeEnv();
    const v = await exec([...QEMU, BIN, "--version"], e);
    expect(v.stdout).toMatch(new RegExp(`^pythond ${VERSION.replace(/\./g, "\\.")} \\(commit [0-9a-f]{12}(-dirty)?, linux-arm64\\)\\n$`));
    await using d = await new BinDaemon(e, BIN, QEMU).start();
    expect((await exec([PYSH, "new", "w"], e)).code).toBe(0); // the host's client, the arm64 daemon
    expect(await exec([...QEMU, BIN, "pysh", "run", "w", "x = 6\nx * 7"], e)).toEqual({ code: 0, stdout: "42\n", stderr: "" });
    const st = await exec([...QEMU, BIN, "pyctl", "status"], e);
    expect(st.stdout).toContain(`pid: ${d.pid}`);
  }, 180_000);
});
