/**
 * `pysh ls --json`: the `ls` reply's lines (the wire contract, src/daemon/dispatch.ts) as one
 * JSON array, so scripts need not parse text: [{"name", "state", "pid"?, "reason"?, "remote"?}].
 */
export interface LsEntry {
  name: string;
  state: string;
  pid?: number;
  reason?: string;
  remote?: string;
}

export function parseLs(text: string): LsEntry[] {
  if (text.trim() === "(no sessions)") return [];
  const out: LsEntry[] = [];
  for (const raw of text.split("\n")) {
    const m = /^ {2}([^:]+): (.*)$/.exec(raw);
    if (!m) continue;
    const [, name, rest] = m as unknown as [string, string, string];
    let r: RegExpExecArray | null;
    if ((r = /^alive pid=(\d+)/.exec(rest))) out.push({ name, state: "alive", pid: Number(r[1]) });
    else if ((r = /^incompatible pid=(\d+) \((.*)\)$/.exec(rest))) out.push({ name, state: "incompatible", pid: Number(r[1]), reason: r[2] });
    else if ((r = /^dead \((.*)\)$/.exec(rest))) out.push({ name, state: "dead", reason: r[1] });
    else if ((r = /^-> (.*) \(remote\)$/.exec(rest))) out.push({ name, state: "remote", remote: r[1] });
    else out.push({ name, state: rest.split(" ")[0]! });
  }
  return out;
}
