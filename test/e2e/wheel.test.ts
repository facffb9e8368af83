/**
 * The platform wheel from dist/release, the seed's `pip install pythond`: installed offline from
 * the file into a fresh venv, it puts pythond, pysh and pyctl on the venv's PATH; a daemon from
 * the venv runs a cell through the venv's pysh. The wheel's RECORD is checked against its
 * members the way installers do.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exec, makeEnv } from "./harness.ts";
import { BinDaemon, ensureRelease, RELEASE, VERSION } from "./release-harness.ts";

const WHEEL = join(RELEASE, `pythond-${VERSION}-py3-none-manylinux_2_17_x86_64.whl`);
let venv: string;

beforeAll(async () => {
  await ensureRelease();
  venv = join(mkdtempSync(join(tmpdir(), "pyd-whl-")), "venv");
}, 300_000);

describe("wheel", () => {
  test("RECORD lists every member with its sha256 and size, and the scripts are executable", async () => {
    const check = `
import base64, hashlib, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
assert z.testzip() is None
info = "pythond-${VERSION}.dist-info/"
rows = [l.split(",") for l in z.read(info + "RECORD").decode().splitlines()]
names = sorted(i.filename for i in z.infolist())
assert sorted(r[0] for r in rows) == names, (names, rows)
for name, digest, size in rows:
    if name == info + "RECORD": continue
    data = z.read(name)
    assert digest == "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode(), name
    assert int(size) == len(data), name
for s in ("pythond", "pysh", "pyctl"):
    assert z.getinfo("pythond-${VERSION}.data/scripts/" + s).external_attr >> 16 == 0o100755, s
wheel = z.read(info + "WHEEL").decode()
assert "Root-Is-Purelib: false" in wheel and "Tag: py3-none-manylinux_2_17_x86_64" in wheel, wheel
# the Python client library, with its dependency declared
assert "pythond/__init__.py" in names and "pythond/py.typed" in names, names
assert "Requires-Dist: websockets>=13" in z.read(info + "METADATA").decode().splitlines()
print("ok", len(names))
`;
    const r = await exec(["python3", "-c", check, WHEEL], makeEnv());
    expect(r.stderr).toBe("");
    expect(r.stdout).toMatch(/^ok \d+\n$/);
  });

  test("pip installs it offline into a fresh venv; pysh --version and a cell run from the venv", async () => {
    const e = makeEnv();
    expect((await exec(["python3", "-m", "venv", venv], e)).code).toBe(0);
    const pip = await exec([join(venv, "bin", "pip"), "install", "--no-index", "--no-deps", "--disable-pip-version-check", "-q", WHEEL], e, {
      env: { PIP_NO_INPUT: "1", PIP_CONFIG_FILE: "/dev/null" },
    });
    expect(pip.stderr).toBe("");
    expect(pip.code).toBe(0);
    const bin = join(venv, "bin");
    for (const tool of ["pythond", "pysh", "pyctl"]) {
      const r = await exec([join(bin, tool), "--version"], e);
      expect(r.stdout).toMatch(new RegExp(`^${tool} ${VERSION.replace(/\./g, "\\.")} \\(commit [0-9a-f]{12}(-dirty)?, linux-x64\\)\\n$`));
    }
    // With the venv activated (its bin/ first on PATH), the names resolve as a user types them.
    const path = `${bin}:/usr/bin:/bin`;
    await using d = await new BinDaemon(e, join(bin, "pythond")).start();
    expect((await exec(["pysh", "new", "w"], e, { env: { PATH: path } })).code).toBe(0);
    expect(await exec(["pysh", "run", "w", "import sys; sys.version_info[0] * 14"], e, { env: { PATH: path } })).toEqual({ code: 0, stdout: "42\n", stderr: "" });
    expect((await exec(["pyctl", "status"], e, { env: { PATH: path } })).stdout).toContain(`pid: ${d.pid}`);
    // `import pythond`: the client library came with the wheel. Its dependency (websockets) is
    // not fetched here (offline, --no-deps): the suite's pyenv provides it through a .pth file.
    const py = process.env.PYTHOND_TEST_PYTHON;
    if (!py) throw new Error("PYTHOND_TEST_PYTHON is not set: run through scripts/test.ts");
    const dep = await exec([py, "-c", "import os, websockets; print(os.path.dirname(os.path.dirname(websockets.__file__)))"], e);
    expect(dep.code).toBe(0);
    const site = (await exec([join(bin, "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], e)).stdout.trim();
    writeFileSync(join(site, "zz-test-deps.pth"), dep.stdout);
    const imp = await exec([join(bin, "python"), "-c", "import os, pythond; print(os.path.dirname(pythond.__file__)); r = pythond.Client().session('w').run('6 * 7'); print(r.ok, repr(r.output))"], e);
    expect(imp.stderr).toBe("");
    const [where, ran] = imp.stdout.split("\n");
    expect(where).toStartWith(venv);
    expect(ran).toBe("True '42\\n'");
    const un = await exec([join(bin, "pip"), "uninstall", "-y", "-q", "pythond"], e);
    expect(un.code).toBe(0);
    expect(existsSync(join(bin, "pythond")) || existsSync(join(bin, "pysh"))).toBe(false);
    expect((await exec([join(bin, "python"), "-c", "import pythond"], e)).code).toBe(1);
    rmSync(join(venv, ".."), { recursive: true, force: true });
  });
});
