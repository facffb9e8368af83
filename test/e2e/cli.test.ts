/**
 * The CLI conventions of every command of all three names, walked from the command tables
 * (src/cli/*-commands.ts) and pyctl's registered commands, so a new command cannot slip through:
 * --help and -h with an example, `help <command>`, an unknown flag refused (and nothing done),
 * no colour into pipes, completion scripts that work in a real bash, docs/CLI.md in step.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { PYSH } from "../../src/cli/pysh-commands.ts";
import { PYCTL, PYTHOND } from "../../src/cli/pyctl-commands.ts";
import { SUBCOMMANDS } from "../../src/cli/pyctl.ts";
import { COMMANDS as PYSH_HANDLERS } from "../../src/cli/pysh.ts";
import { renderDocs } from "../../src/cli/docs.ts";
import { synopsis, type CmdSpec, type RoleSpec } from "../../src/cli/spec.ts";
import { alive, BIN, exec, PYCTL as PYCTL_BIN, PYSH as PYSH_BIN, ROOT, startDaemon, type Daemon } from "./harness.ts";

let d: Daemon;
beforeAll(async () => {
  d = await startDaemon();
  expect((await d.pysh(["new", "work"])).code).toBe(0);
});
afterAll(async () => {
  await d?.[Symbol.asyncDispose]();
});

const ROLES: Array<[RoleSpec, string[]]> = [
  [PYSH, [PYSH_BIN]],
  [PYCTL, [PYCTL_BIN]],
  [PYTHOND, [BIN]],
];
/** Arguments that satisfy a command's positionals, so only the flag can be wrong. */
function fill(c: CmdSpec): string[] {
  const n = c.min ?? 0;
  return Array.from({ length: n }, (_, i) => (i === 0 && c.complete?.[0] === "shell" ? "bash" : i === 0 ? "work" : `arg${i}`));
}
const ANSI = /\x1b\[/;

describe("the tables cover every command that exists", () => {
  test("pysh: every handler and every table entry match (plus the daemon-free ones)", () => {
    // daemon-free, or with their own parser once the table has checked the line (src/cli/fleet/, mcp)
    const local = ["attach", "help", "completion", "__complete", "sh", "job", "shell", "put", "get", "forward", "mcp"];
    expect(PYSH.commands.map((c) => c.name).sort()).toEqual([...Object.keys(PYSH_HANDLERS), ...local].sort());
  });
  test("pyctl: every registered command has a table entry with the same options", async () => {
    for (const [name, lazy] of Object.entries(SUBCOMMANDS)) {
      const spec = PYCTL.commands.find((c) => c.name === name);
      expect(spec, `pyctl ${name} needs an entry in src/cli/pyctl-commands.ts`).toBeDefined();
      const def = typeof lazy === "function" ? await lazy() : lazy;
      const flags = Object.entries((def.args ?? {}) as Record<string, { type: string }>)
        .filter(([, a]) => a.type !== "positional")
        .map(([k]) => k);
      expect(flags.sort()).toEqual(Object.keys(spec!.options ?? {}).sort());
    }
  });
  test("every command has a summary and an example", () => {
    for (const [spec] of ROLES) for (const c of spec.commands) {
      expect(c.summary.length, `${spec.role} ${c.name}`).toBeGreaterThan(10);
      expect(c.examples.length, `${spec.role} ${c.name}`).toBeGreaterThan(0);
      for (const e of c.examples) expect(e).toContain(spec.role === "pythond" ? "pythond" : spec.role);
    }
  });
});

describe("--help, -h, help <command>: one synopsis per command", () => {
  for (const [spec, bin] of ROLES) {
    // `pythond pysh …` / `pythond pyctl …` are pysh and pyctl themselves (checked below).
    for (const c of spec.commands.filter((x) => !x.hidden && x.max !== -1)) {
      test(`${spec.role} ${c.name}`, async () => {
        const syn = `usage: ${synopsis(spec.role, c)}\n`;
        for (const flag of ["--help", "-h"]) {
          const r = await exec([...bin, c.name, ...fill(c), flag], d.e);
          expect(r.stderr).toBe("");
          expect(r.code).toBe(0);
          expect(r.stdout).toStartWith(syn);
          expect(r.stdout).toContain(c.examples[0]!);
          expect(r.stdout).not.toMatch(ANSI);
        }
        const h = await exec([...bin, "help", c.name], d.e);
        expect(h).toMatchObject({ code: 0, stderr: "" });
        expect(h.stdout).toStartWith(syn);
      });
    }
    test(`${spec.role} --help lists the same synopses`, async () => {
      const r = await exec([...bin, "--help"], d.e);
      expect(r.code).toBe(0);
      for (const c of spec.commands) {
        if (c.hidden) expect(r.stdout).not.toContain(`${spec.role} ${c.name} `);
        else expect(r.stdout).toContain(synopsis(spec.role, c));
      }
    });
  }
  test("pythond pysh --help / pythond pyctl --help are pysh's and pyctl's", async () => {
    expect((await exec([BIN, "pysh", "--help"], d.e)).stdout).toBe((await d.pysh(["--help"])).stdout);
    expect((await exec([BIN, "pyctl", "stop", "-h"], d.e)).stdout).toBe((await d.pyctl(["stop", "-h"])).stdout);
  });
  test("pysh run work --help is help, and --help inside the code is code", async () => {
    expect((await d.pysh(["run", "--help"])).stdout).toStartWith("usage: pysh run <name> [--timeout S] [--selector K=V,…] [--all] [--session NAME] [--max-concurrency N] [--json] <code|@file|->\n");
    const r = await d.pysh(["run", "work", "print('--help')"]);
    expect(r).toEqual({ code: 0, stdout: "--help\n", stderr: "" });
    expect((await d.pysh(["run", "work", "-1", "+", "2"])).stdout).toBe("1\n");
  });
});

describe("unknown options are refused, and nothing is done", () => {
  for (const [spec, bin] of ROLES) {
    for (const c of spec.commands.filter((x) => !x.hidden && !(spec.role === "pythond" && x.max === -1))) {
      test(`${spec.role} ${c.name} --no-such-flag`, async () => {
        const r = await exec([...bin, c.name, ...fill(c), "--no-such-flag"], d.e);
        expect(r.code).toBe(1);
        expect(r.stdout).toBe("");
        expect(r.stderr).toStartWith(`ERR unknown option --no-such-flag for ${spec.role} ${c.name}; `);
        const valid = Object.keys(c.options ?? {}).map((k) => `--${k}`);
        for (const v of valid) expect(r.stderr).toContain(v);
        expect(r.stderr).not.toMatch(ANSI);
      });
    }
  }
  test("the issue's typo: pyctl stop --keep-session stops nothing and says what was meant", async () => {
    const r = await d.pyctl(["stop", "--keep-session"]);
    expect(r).toEqual({
      code: 1,
      stdout: "",
      stderr: "ERR unknown option --keep-session (did you mean --keep-sessions?) for pyctl stop; valid: --keep-sessions, --help\n",
    });
    expect(alive(d.pid)).toBe(true);
    expect((await d.pysh(["run", "work", "1 + 1"])).stdout).toBe("2\n");
  });
  test("pysh kill work --force kills nothing; pysh run work --timout 5 runs nothing", async () => {
    expect((await d.pysh(["kill", "work", "--force"])).code).toBe(1);
    expect((await d.pysh(["run", "work", "--timout", "5", "ran = 1"])).stderr).toStartWith(
      "ERR unknown option --timout (did you mean --timeout?) for pysh run",
    );
    expect((await d.pysh(["run", "work", "'ran' in dir()"])).stdout).toBe("False\n");
    expect((await d.pysh(["run", "work", "--", "--1"])).stdout).toBe("1\n"); // code after -- is code
  });
  test("unknown commands: did you mean, no colour, exit 1", async () => {
    const r = await exec([PYCTL_BIN, "sttaus"], d.e, { env: { NO_COLOR: "", TERM: "xterm-256color" } });
    expect(r.code).toBe(1);
    expect(r.stderr).toStartWith("ERR unknown command sttaus (did you mean status?)");
    expect(r.stderr + r.stdout).not.toMatch(ANSI);
    const h = await exec([PYCTL_BIN, "--help"], d.e, { env: { NO_COLOR: "", FORCE_COLOR: "1", TERM: "xterm-256color" } });
    expect(h.stdout).toContain("pyctl stop [--keep-sessions]");
    expect(h.stdout).not.toMatch(ANSI);
    expect((await d.pysh(["runn", "work", "1"])).stderr).toStartWith("ERR unknown command runn (did you mean run?)");
  });
});

describe("names, hints, --cwd, --json", () => {
  test("a bad name is refused in the client with the rule; nothing smuggles a second word", async () => {
    const rule = "ERR invalid session name (lowercase a-z, 0-9, _ and -, up to 80 characters)\n";
    expect(await d.pysh(["new", "Bad Name"])).toEqual({ code: 1, stdout: "", stderr: rule });
    expect(await d.pysh(["run", "work --timeout", "1"])).toEqual({ code: 1, stdout: "", stderr: rule });
    expect((await d.pysh(["poll", "work", "abc --x"])).stderr).toBe('ERR invalid cell id: "abc --x"\n');
    expect((await d.pysh(["new", "ok", "--idle-timeout", "5 --replace"])).stderr).toStartWith("ERR --idle-timeout takes a number");
    expect((await d.pysh(["ls"])).stdout).not.toContain("ok:");
    expect((await d.pyctl(["connect", "srv", "127.0.0.1:1 --tls", "tok"])).stderr).toBe('ERR invalid endpoint: "127.0.0.1:1 --tls"\n');
    expect((await d.pyctl(["disconnect", "Bad Name"])).stderr).toBe(rule);
  });
  test("hints say what to type", async () => {
    expect((await d.pysh(["run", "tmp1", "1"])).stderr).toBe("ERR no session 'tmp1' -- create it first with: pysh new tmp1\n");
    expect((await d.pysh(["new", "work"])).stderr).toBe("ERR session 'work' already exists (pysh new work --replace replaces it)\n");
  });
  test("--cwd must be an existing directory (client and daemon); a good one is used", async () => {
    const r = await d.pysh(["new", "nx", "--cwd", "/nonexistent"]);
    expect(r).toEqual({ code: 1, stdout: "", stderr: "ERR --cwd /nonexistent: no such directory\n" });
    const raw = await import("./harness.ts").then((h) => h.rawClient(d.e.sock));
    expect(await raw.ask("new nx --cwd /nonexistent")).toBe("ERR --cwd /nonexistent: no such directory");
    raw.close();
    expect((await d.pysh(["ls"])).stdout).not.toContain("nx:");
    expect((await d.pysh(["new", "incwd", "--cwd", "/tmp"])).code).toBe(0);
    expect((await d.pysh(["run", "incwd", "os.getcwd()"])).stdout).toBe("/tmp\n");
    await d.pysh(["kill", "incwd"]);
  });
  test("pysh ls --json and pyctl status --json", async () => {
    const ls = JSON.parse((await d.pysh(["ls", "--json"])).stdout) as Array<{ name: string; state: string; pid: number }>;
    expect(ls).toContainEqual({ name: "work", state: "alive", pid: expect.any(Number) });
    const st = JSON.parse((await d.pyctl(["status", "--json"])).stdout);
    expect(st).toEqual({ socket: d.e.sock, alive: true, pid: d.pid, version: expect.any(String), listen: [] });
  });
});

describe("shell completion", () => {
  const bash = (words: string[]) =>
    exec(
      [
        "bash",
        "--norc",
        "-c",
        `source <(pysh completion bash); COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")}); COMP_CWORD=${words.length - 1}; _pysh_complete; printf '%s\\n' "\${COMPREPLY[@]}"`,
      ],
      d.e,
      { env: { PATH: `${join(ROOT, "dist")}:${process.env.PATH}` } },
    );
  test("bash: commands, options, session names from the running daemon", async () => {
    expect((await bash(["pysh", "ru"])).stdout).toBe("run\n");
    expect((await bash(["pysh", "run", "wo"])).stdout).toBe("work\n");
    expect((await bash(["pysh", "ls", "--"])).stdout).toBe("--json\n--help\n");
    expect((await bash(["pysh", "completion", ""])).stdout).toBe("bash\nzsh\nfish\n");
  });
  test("pyctl completes commands, flags and proxy/session names", async () => {
    expect((await d.pyctl(["__complete", "st"])).stdout).toBe("start\nstop\nstatus\n");
    expect((await d.pyctl(["__complete", "stop", "--k"])).stdout).toBe("--keep-sessions\n");
    expect((await d.pyctl(["__complete", "disconnect", "w"])).stdout).toBe("work\n");
  });
  test("no daemon: commands still complete, names are empty, quickly", async () => {
    const e = { ...d.e, env: { ...d.e.env, PYTHOND_SOCK: join(d.e.dir, "nothing.sock") } };
    expect((await exec([PYSH_BIN, "__complete", "run", ""], e)).stdout).toBe("");
    expect((await exec([PYSH_BIN, "__complete", "ki"], e)).stdout).toBe("kill\n");
  });
  const withDist = { env: { PATH: `${join(ROOT, "dist")}:${process.env.PATH}` } };
  // zsh and fish are Debian packages that `npm run setup` installs (scripts/setup-tools.sh).
  test("fish: complete -C gives commands, names, options; files where nothing else fits", async () => {
    const fish = async (line: string) =>
      (await exec(["/usr/bin/fish", "--no-config", "-c", `pysh completion fish | source; complete -C ${JSON.stringify(line)}`], d.e, withDist)).stdout;
    expect(await fish("pysh ru")).toBe("run\n");
    expect(await fish("pysh run wo")).toBe("work\n");
    expect(await fish("pysh ls --")).toBe("--help\n--json\n");
    expect(await fish("pysh run work ho")).toBe("home/\n"); // the code argument: file names
  });
  test("zsh: the function offers what __complete prints, else files", async () => {
    // compadd/_files/compdef stand in for the completion system, which needs a live terminal.
    const stubs = 'compdef() {}; compadd() { while [[ $1 != -- ]]; do shift; done; shift; print -l -- "$@"; }; _files() { print FILES; };';
    const zsh = async (words: string[]) =>
      (
        await exec(
          ["/usr/bin/zsh", "-f", "-c", `${stubs} source <(pysh completion zsh); words=(${words.map((w) => `'${w}'`).join(" ")}); CURRENT=${words.length}; _pysh_complete`],
          d.e,
          withDist,
        )
      ).stdout;
    expect(await zsh(["pysh", "ru"])).toBe("run\n");
    expect(await zsh(["pysh", "kill", "w"])).toBe("work\n");
    expect(await zsh(["pysh", "run", "work", "@"])).toBe("FILES\n");
  });
  test("zsh and fish scripts call __complete; an unknown shell is refused", async () => {
    for (const sh of ["zsh", "fish"]) {
      const r = await d.pysh(["completion", sh]);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain("pysh __complete");
      const check = await exec([`/usr/bin/${sh}`, "-n", "-c", r.stdout], d.e); // syntax only
      expect(check.code).toBe(0);
    }
    expect((await d.pysh(["completion", "tcsh"])).stderr).toBe('ERR completion takes one of: bash, zsh, fish (got "tcsh")\n');
  });
});

describe("docs/CLI.md", () => {
  test("is what the tables give (regenerate with: bun scripts/cli-docs.ts)", async () => {
    expect(readFileSync(join(ROOT, "docs", "CLI.md"), "utf8")).toBe(await renderDocs());
  });
});
