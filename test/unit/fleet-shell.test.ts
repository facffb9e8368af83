/**
 * PTY shells on a node (src/fleet/shell): real PTYs, real shells, viewers coming and going; on
 * both PTY backends (pty.ts): Bun's terminal, and bun-pty (Windows' ConPTY backend, whose Unix
 * side is run here).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Shell, ShellExit, Viewer } from "../../src/fleet/shell/shell.ts";
import { ShellTable } from "../../src/fleet/shell/table.ts";

// a plain sh with a fixed prompt: no profile noise from the test machine's login files
const table = new ShellTable({ shell: "/bin/sh", env: { PS1: "$ ", ENV: "" } });
afterAll(() => table.hangupAll());
const chosen = process.env.PYTHOND_PTY;
afterAll(() => {
  if (chosen === undefined) delete process.env.PYTHOND_PTY;
  else process.env.PYTHOND_PTY = chosen;
});

/** A viewer that collects the screen and lets a test wait for text on it. */
class Screen implements Viewer {
  text = "";
  bytes: Uint8Array[] = [];
  exit?: ShellExit;
  private waits: (() => void)[] = [];
  output(b: Uint8Array): void {
    this.bytes.push(b);
    this.text += Buffer.from(b).toString("latin1");
    this.poke();
  }
  ended(e: ShellExit): void {
    this.exit = e;
    this.poke();
  }
  private poke() {
    for (const w of this.waits.splice(0)) w();
  }
  async until(pred: () => boolean): Promise<void> {
    while (!pred()) await new Promise<void>((r) => this.waits.push(r));
  }
  see(s: string | RegExp) {
    return this.until(() => (typeof s === "string" ? this.text.includes(s) : s.test(this.text)));
  }
}

function open(spec = {}): Shell {
  return table.open(spec).shell;
}

for (const backend of ["bun", "bun-pty"] as const)
describe(`shell (${backend})`, () => {
  beforeAll(async () => {
    process.env.PYTHOND_PTY = backend;
    await table.ready();
  });

  test("a login shell in a PTY: keys in, screen out, exit code to the viewer", async () => {
    const sh = open({ cwd: "/tmp" });
    const v = new Screen();
    const h = sh.attach(v);
    h.write("tty; pwd; echo $((6*7))\n");
    await v.see(/42\r?\n/);
    expect(v.text).toContain("/dev/pts/");
    expect(v.text).toContain("/tmp");
    h.write("exit 7\n");
    await v.until(() => v.exit !== undefined);
    expect(v.exit).toEqual({ exit: 7, code: 7, signal: null });
    expect(table.list().map((s) => s.id)).not.toContain(sh.id);
  });

  test("bytes exact through the PTY (binary output; bun-pty: UTF-8 only, other bytes become U+FFFD)", async () => {
    const sh = open();
    const v = new Screen();
    const h = sh.attach(v);
    h.write("printf 'X\\377\\001Y \\342\\202\\254\\n'\n");
    await v.see(backend === "bun" ? "X\xff\x01Y \xe2\x82\xac" : "X\xef\xbf\xbd\x01Y \xe2\x82\xac");
    h.write("exit\n");
    await sh.done;
  });

  test("it outlives its viewer: detach, list, re-attach with the recent screen replayed", async () => {
    const sh = open();
    const v1 = new Screen();
    const h1 = sh.attach(v1);
    h1.write("marker=abc; echo before-$marker\n");
    await v1.see("before-abc");
    h1.detach();
    const listed = table.list().find((s) => s.id === sh.id)!;
    expect(listed.viewers).toBe(0);
    expect(listed.idleSince).not.toBeNull();
    const v2 = new Screen();
    const h2 = table.get(sh.id).attach(v2);
    expect(v2.text).toContain("before-abc"); // the replay, before anything new
    h2.write("echo after-$marker\n"); // the shell's state survived
    await v2.see("after-abc");
    expect(v1.text).not.toContain("after-abc");
    h2.write("exit 3\n");
    expect((await sh.done).exit).toBe(3);
  });

  test("several viewers; a read-only one sees all and can neither type nor resize", async () => {
    const sh = open();
    const rw = new Screen();
    const ro = new Screen();
    const hw = sh.attach(rw);
    const hr = sh.attach(ro, { readOnly: true });
    expect(() => hr.write("echo no\n")).toThrow("this viewer is read-only");
    expect(() => hr.resize(100, 50)).toThrow("this viewer is read-only");
    hw.write("echo shared-$((1+1))\n");
    await rw.see("shared-2");
    await ro.see("shared-2");
    expect(sh.info().viewers).toBe(2);
    hw.write("exit 0\n");
    await ro.until(() => ro.exit !== undefined);
    expect(ro.exit!.exit).toBe(0);
    expect(rw.exit!.exit).toBe(0);
  });

  test("resize reaches the PTY", async () => {
    const sh = open({ cols: 80, rows: 24 });
    const v = new Screen();
    const h = sh.attach(v);
    h.write("stty size\n");
    await v.see("24 80");
    h.resize(132, 43);
    h.write("stty size\n");
    await v.see("43 132");
    expect(sh.info()).toMatchObject({ cols: 132, rows: 43 });
    expect(() => h.resize(0, 10)).toThrow("bad size 0x10");
    h.write("exit\n");
    await sh.done;
  });

  test("unwatched for --linger: hung up (SIGHUP), and gone from the list", async () => {
    const sh = open({ lingerMs: 150 });
    const v = new Screen();
    const h = sh.attach(v);
    h.write("echo up\n");
    await v.see("up");
    h.detach();
    const r = await sh.done;
    // bun-pty (portable-pty) reports a death by signal as exit status 1, without the signal
    expect(r).toEqual(backend === "bun" ? { exit: 129, code: null, signal: "SIGHUP" } : { exit: 1, code: 1, signal: null });
    expect(() => table.get(sh.id)).toThrow(`no shell '${sh.id}'`);
  });

  test("a viewer coming back before the linger ends keeps it alive", async () => {
    const sh = open({ lingerMs: 300 });
    const a = sh.attach(new Screen());
    a.detach();
    const v = new Screen();
    const b = sh.attach(v); // before 300 ms: the timer is cleared
    b.write("sleep 0.5; echo still-here\n");
    await v.see("still-here");
    b.write("exit\n");
    expect((await sh.done).exit).toBe(0);
  });

  test("bad input: missing cwd, bad id, an id resent", () => {
    expect(() => open({ cwd: "/no/such" })).toThrow("no such directory: /no/such");
    expect(() => table.open({}, "bad id")).toThrow("bad shell id");
    const a = table.open({}, "s-1");
    const b = table.open({}, "s-1");
    expect(b.created).toBe(false);
    expect(b.shell).toBe(a.shell);
    a.shell.hangup();
  });
});
