/**
 * Shell completion for pysh and pyctl, from the same command tables as --help (spec.ts).
 *
 * The scripts are thin: they hand the words typed so far to the hidden `<role> __complete` and
 * offer what it prints, one candidate a line (no candidates: the shell completes file names).
 * Commands and options come from the table; session (and proxy) names from the running daemon's
 * `ls`, asked with a short deadline so that a missing daemon never stalls the shell; node names
 * from its `nodes --json` (a hub's; none elsewhere). Loaded only for completion: never on the `run` path.
 */
import { PythondError } from "../protocol/errors.ts";
import type { ArgKind, CmdSpec, RoleSpec } from "./spec.ts";

const SHELLS = ["bash", "zsh", "fish"] as const;
const DAEMON_DEADLINE_MS = 1000;

export function completionScript(role: string, shell: string): string {
  const fn = `_${role}_complete`;
  switch (shell) {
    case "bash":
      return `# ${role} completion for bash: source <(${role} completion bash)
${fn}() {
  local IFS=$'\\n'
  COMPREPLY=($(${role} __complete "\${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null))
}
complete -o default -F ${fn} ${role}`;
    case "zsh":
      return `#compdef ${role}
# ${role} completion for zsh: source <(${role} completion zsh)   (after compinit)
${fn}() {
  local -a c
  c=("\${(@f)$(${role} __complete "\${(@)words[2,CURRENT]}" 2>/dev/null)}")
  if (( \${#c} )) && [[ -n "\${c[1]}" ]]; then compadd -Q -- "\${c[@]}"; else _files; fi
}
compdef ${fn} ${role}`;
    case "fish":
      return `# ${role} completion for fish: ${role} completion fish > ~/.config/fish/completions/${role}.fish
function ${fn}
    set -l c (${role} __complete (commandline -opc)[2..-1] (commandline -ct) 2>/dev/null)
    if test (count $c) -gt 0
        printf '%s\n' $c
    else
        __fish_complete_path (commandline -ct)
    end
end
complete -c ${role} -f -a '(${fn})'`;
    default:
      throw new PythondError("usage", `completion takes one of: ${SHELLS.join(", ")} (got ${JSON.stringify(shell)})`);
  }
}

/** Candidates for the last word of `words` (the words after the program name). */
export async function completeWords(spec: RoleSpec, words: string[]): Promise<string[]> {
  const cur = words.at(-1) ?? "";
  const before = words.slice(0, -1);
  const match = (xs: Iterable<string>) => [...xs].filter((x) => x.startsWith(cur));
  if (before.length === 0) return match(spec.commands.filter((c) => !c.hidden).map((c) => c.name));
  const cmd = spec.commands.find((c) => c.name === before[0]);
  if (!cmd) return [];
  const opts = cmd.options ?? {};
  const prev = before.at(-1)!;
  if (prev.startsWith("--") && opts[prev.slice(2)]?.value) return []; // a value: the shell's files
  if (cur.startsWith("-")) return match([...Object.keys(opts).map((k) => `--${k}`), "--help"]);
  const positional = positionalIndex(cmd, before.slice(1));
  const kinds = cmd.complete ?? [];
  const kind = kinds[Math.min(positional, kinds.length - 1)];
  if (kind === "subcommand") return match(cmd.subcommands ?? []);
  return kind ? match(await candidates(spec, kind)) : [];
}

function positionalIndex(cmd: CmdSpec, words: string[]): number {
  let n = 0;
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (w.startsWith("--")) {
      const o = cmd.options?.[w.slice(2)];
      if (o?.value && !w.includes("=")) i++;
      continue;
    }
    n++;
  }
  return n;
}

async function candidates(spec: RoleSpec, kind: ArgKind): Promise<string[]> {
  switch (kind) {
    case "command":
      return spec.commands.filter((c) => !c.hidden).map((c) => c.name);
    case "shell":
      return [...SHELLS];
    case "session":
      return (await fromDaemon("ls")).flatMap((t) => [...t.matchAll(/^ {2}([^:\s]+):/gm)].map((m) => m[1]!));
    case "node":
      // the hub's nodes (`nodes --json`: one object per node); none from a daemon that is no hub
      return (await fromDaemon("nodes", ["--json"])).flatMap((t) => {
        try {
          return (JSON.parse(t) as Array<{ id: string }>).map((n) => n.id);
        } catch {
          return [];
        }
      });
    default:
      return [];
  }
}

/** One request to the running daemon, or nothing if it does not answer within the deadline. */
async function fromDaemon(cmd: string, args: string[] = []): Promise<string[]> {
  const { Client } = await import("../client/connect.ts");
  const { request } = await import("../client/api.ts");
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<string[]>((resolve) => (timer = setTimeout(() => resolve([]), DAEMON_DEADLINE_MS)));
  const ask = (async () => {
    const c = await Client.open({ noWait: true });
    try {
      return [await request(c, cmd, args)];
    } finally {
      c.close();
    }
  })().catch(() => [] as string[]);
  try {
    return await Promise.race([ask, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
