/**
 * Everything a node serves for issue 19, behind one door: `serve(spec, io)` handles one tunnel
 * the hub opened (src/fleet/io/mux-pipe.ts: `io` frames on the node link). The node owns the job
 * and shell tables, so commands and shells outlive the tunnel, the link and the hub.
 *
 * Remote paths (put, get) are taken relative to the node user's home, as scp does; `~/` too.
 */
import { homedir } from "node:os";
import { isAbsolute, join } from "node:path";
import { PythondError } from "../../protocol/errors.ts";
import type { IoSpec } from "../../protocol/fleet-io.ts";
import type { Duplex } from "../duplex.ts";
import { JobTable } from "../exec/table.ts";
import { receiveTree } from "../files/receive.ts";
import { sendTree } from "../files/send.ts";
import { serveForward } from "../forward/forward.ts";
import { ShellTable } from "../shell/table.ts";
import { serveShell } from "./serve-shell.ts";
import { sendError, serveJob, serveSh } from "./serve-sh.ts";

export interface NodeIoOptions {
  home?: string;
  jobs?: JobTable;
  shells?: ShellTable;
}

export class NodeIo {
  readonly jobs: JobTable;
  readonly shells: ShellTable;
  readonly home: string;

  constructor(opts: NodeIoOptions = {}) {
    this.jobs = opts.jobs ?? new JobTable();
    this.shells = opts.shells ?? new ShellTable();
    this.home = opts.home ?? homedir();
  }

  /** A path from the client, as the node sees it. */
  path(p: string): string {
    if (p === "~") return this.home;
    if (p.startsWith("~/")) return join(this.home, p.slice(2));
    return isAbsolute(p) ? p : join(this.home, p);
  }

  /** Serves one tunnel to its end. Never throws: errors go to the client as its last message. */
  async serve(spec: IoSpec, io: Duplex): Promise<void> {
    try {
      switch (spec?.kind) {
        case "sh":
          if (typeof spec.command !== "string" || spec.command === "") throw new PythondError("usage", "sh needs a command");
          return await serveSh(this.jobs, spec, io);
        case "job":
          return await serveJob(this.jobs, spec, io);
        case "shell":
          return await serveShell(this.shells, { ...spec, cwd: spec.cwd === undefined ? undefined : this.path(spec.cwd) }, io);
        case "put":
          await receiveTree(io, this.path(spec.dest), { resume: spec.resume });
          return;
        case "get":
          await sendTree(io, this.path(spec.src), { recursive: spec.recursive });
          return;
        case "forward":
          await serveForward(io, spec.host, spec.port);
          return;
        default:
          throw new PythondError("unknown_command", `unknown node service '${(spec as { kind?: string })?.kind}'`);
      }
    } catch (e) {
      // the file engines have told the client already (their err message); anything else here
      await sendError(io, e);
    }
  }
}
