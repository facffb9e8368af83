/**
 * The fleet's calls of PythondClient (lib.ts extends this): a hub's nodes, shell commands and
 * jobs on them, fan-out, files. Each node call runs on a connection of its own
 * (`openConnection`), so they run at once, apart from the client's queue of session calls. The
 * work is done in fleet.ts, fleet-fanout.ts and fleet-files.ts on pysh's own core.
 */
import { PythondError } from "../protocol/errors.ts";
import type { Client } from "./connect.ts";
import * as fleet from "./fleet.ts";
import { shMany, type Selector, type ShManyOptions } from "./fleet-fanout.ts";
import * as files from "./fleet-files.ts";
import { nodeInfo, type JobInfo, type JobState, type NodeInfo, type NodeShResult, type ShResult, type TransferSummary } from "./fleet-results.ts";

export abstract class FleetCalls {
  abstract readonly openConnection: () => Promise<Client>;
  abstract json<T>(cmd: string, args?: string[], body?: string): Promise<T>;

  // This daemon is a hub (`pythond daemon --listen …`).
  // A node's sessions are sessions like any: `c.session("worker-1/work")`, `c.new("worker-1/work")`.

  /** The hub's nodes, enrolled ones that are offline included ([] when this daemon is no hub). */
  async nodes(): Promise<NodeInfo[]> {
    return (await this.json<Record<string, unknown>[]>("nodes", ["--json"])).map(nodeInfo);
  }

  /** Resolves when node `id` is online (it may not have joined yet); a timeout error after timeoutMs (default 30 s). */
  async waitForNode(id: string, opts: { timeoutMs?: number } = {}): Promise<NodeInfo> {
    const timeoutMs = opts.timeoutMs ?? 30_000;
    const end = Date.now() + timeoutMs;
    for (;;) {
      const n = (await this.nodes()).find((x) => x.id === id);
      if (n?.state === "online") return n;
      if (Date.now() >= end) {
        const why = n ? `offline since ${n.since}` : "it has not joined this hub (a join token: pyctl join-token)";
        throw new PythondError("timeout", `node '${id}' is not online after ${timeoutMs / 1000} s (${why})`);
      }
      // The hub has no "node joined" event to wait on: ask again shortly (one small reply).
      await Bun.sleep(Math.min(100, Math.max(0, end - Date.now())));
    }
  }

  /** Runs a shell command on a node (`$SHELL -c`), output collected as bytes; its end is a result, not an error. */
  sh(node: string, command: string, opts: fleet.ShOptions = {}): Promise<ShResult> {
    return fleet.sh(this.openConnection, node, command, opts);
  }

  /** Runs a command on a node and yields `{ fd, data }` as produced; `.result` settles with its end. */
  shStream(node: string, command: string, opts: Omit<fleet.ShOptions, "maxOutputBytes"> = {}): fleet.ShStream {
    return new fleet.ShStream(this.openConnection, node, command, opts);
  }

  /** Starts a command that runs on by itself; returns its job id (see `job`). */
  shDetached(node: string, command: string, opts: Omit<fleet.ShOptions, "stdin" | "maxOutputBytes"> = {}): Promise<string> {
    return fleet.shDetached(this.openConnection, node, command, opts);
  }

  /** A job's state and kept output; with `wait` or `kill`, its result. */
  job(node: string, id: string): Promise<JobState>;
  job(node: string, id: string, opts: fleet.JobOptions & ({ wait: true } | { kill: true })): Promise<ShResult>;
  job(node: string, id: string, opts?: fleet.JobOptions): Promise<JobState | ShResult>;
  job(node: string, id: string, opts: fleet.JobOptions = {}): Promise<JobState | ShResult> {
    return fleet.job(this.openConnection, node, id, opts);
  }

  /** The node's jobs (running, and finished ones it still keeps). */
  jobs(node: string): Promise<JobInfo[]> {
    return fleet.jobs(this.openConnection, node);
  }

  /** Runs a command on every node matching `selector` (`"role=web"`, `{ role: "web" }`, `"*"`); yields each node's result as it ends. */
  shMany(selector: Selector, command: string, opts: ShManyOptions = {}): AsyncGenerator<NodeShResult> {
    return shMany(this.openConnection, selector, command, opts);
  }

  /** Copies a local file or directory (recursive) to the node; remote paths are relative to the node user's home. */
  put(node: string, local: string, remote: string, opts: files.TransferOptions = {}): Promise<TransferSummary> {
    return files.put(this.openConnection, node, local, remote, opts);
  }

  /** Copies a file or directory (recursive) from the node to a local path. */
  get(node: string, remote: string, local: string, opts: files.TransferOptions = {}): Promise<TransferSummary> {
    return files.get(this.openConnection, node, remote, local, opts);
  }

  /** A byte range (default: all) of a file on the node. */
  readFile(node: string, remote: string, opts: files.ReadOptions = {}): Promise<files.FileRead> {
    return files.readFile(this.openConnection, node, remote, opts);
  }

  /** Writes a file on the node, atomically. */
  writeFile(node: string, remote: string, data: string | Uint8Array): Promise<TransferSummary> {
    return files.writeFile(this.openConnection, node, remote, data);
  }
}
