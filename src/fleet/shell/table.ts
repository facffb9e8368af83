/**
 * The interactive shells of one node, by id (`pysh shell <node> --list`, `--attach <id>`). An id
 * given by the sender is deduplicated (a resent `open` finds the shell it already started); a shell
 * leaves the table when it ends.
 */
import { randomBytes } from "node:crypto";
import { PythondError } from "../../protocol/errors.ts";
import { preparePty } from "./pty.ts";
import { Shell, type ShellInfo, type ShellSpec } from "./shell.ts";

const ID_RE = /^[A-Za-z0-9._-]{1,64}$/;

export class ShellTable {
  private readonly shells = new Map<string, Shell>();

  constructor(private readonly defaults: Partial<ShellSpec> = {}) {}

  /** Starts a shell (or finds the one a resent `open` already started). Call ready() once first. */
  open(spec: ShellSpec = {}, id?: string): { shell: Shell; created: boolean } {
    if (id !== undefined) {
      if (!ID_RE.test(id)) throw new PythondError("usage", `bad shell id '${id}' (letters, digits, . _ -; at most 64)`);
      const old = this.shells.get(id);
      if (old) return { shell: old, created: false };
    }
    const sid = id ?? randomBytes(4).toString("hex");
    const shell = new Shell(sid, { ...this.defaults, ...spec });
    this.shells.set(sid, shell);
    void shell.done.then(() => this.shells.delete(sid));
    return { shell, created: true };
  }

  /** Loads the PTY backend (pty.ts preparePty). */
  ready(): Promise<void> {
    return preparePty();
  }

  get(id: string): Shell {
    const s = this.shells.get(id);
    if (!s) {
      const ids = [...this.shells.keys()];
      throw new PythondError("not_found", `no shell '${id}'${ids.length ? ` -- shells: ${ids.join(", ")}` : " (none running)"}`);
    }
    return s;
  }

  list(): ShellInfo[] {
    return [...this.shells.values()].map((s) => s.info());
  }

  /** Hangs up every shell (tests; a node going away leaves its shells to their linger). */
  hangupAll(): void {
    for (const s of this.shells.values()) s.hangup();
  }
}
