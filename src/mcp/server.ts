/**
 * `pysh mcp`: a Model Context Protocol server over stdio (@modelcontextprotocol/sdk) in front of
 * the running daemon, so namespaces outlive the agent's client. Loaded only for `pysh mcp` (the
 * SDK and zod are never part of `pysh run`). stdout carries JSON-RPC only; logs go to stderr.
 */
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { z } from "zod";
import { VERSION } from "../protocol/version.ts";
import { DEFAULT_DEADLINE_S, errorResult, Tools, type Progress, type ToolResult } from "./tools.ts";
import { NodeTools, READ_DEFAULT, READ_MAX } from "./nodes.ts";

const session = z.string().describe("session name (lowercase a-z 0-9 _ -)");
const cellId = z.string().describe("cell id, as run/cell_status reported it");
const deadline = z
  .number()
  .positive()
  .optional()
  .describe(`seconds to wait for the answer (default ${DEFAULT_DEADLINE_S}); past it you get the cell id and the output so far, and the cell keeps running`);

type Extra = {
  _meta?: { progressToken?: string | number };
  signal: AbortSignal;
  sendNotification: (n: { method: "notifications/progress"; params: { progressToken: string | number; progress: number; message?: string } }) => Promise<void>;
};

function progressOf(extra: Extra): Progress {
  const token = extra._meta?.progressToken;
  if (token === undefined) return undefined;
  return (progress, message) => {
    void extra
      .sendNotification({ method: "notifications/progress", params: { progressToken: token, progress, message: message ? `running ${progress} s: ${message}` : `running ${progress} s` } })
      .catch(() => {});
  };
}

export function buildServer(tools = new Tools(), nodeTools = new NodeTools()): McpServer {
  const server = new McpServer(
    { name: "pythond", version: VERSION },
    {
      instructions:
        "Persistent Python sessions: variables, imports, open connections and loaded data survive between run calls. " +
        "Create a session once (new_session), then run code in it. A long cell is never killed by a timeout: past the " +
        "deadline you get its cell id and output so far; use wait or cell_status. input() is not available (pass data in the code). " +
        "On a hub, list_nodes shows the machines joined to it: their sessions are named node/session (run(session=\"worker-1/work\")), " +
        "and node_sh, node_job, node_read_file, node_write_file run shell commands and handle files there.",
    },
  );
  const wrap =
    <A>(fn: (a: A, extra: Extra) => Promise<ToolResult>) =>
    async (a: A, extra: Extra): Promise<ToolResult> => {
      try {
        return await fn(a, extra);
      } catch (e) {
        return errorResult(e, (a as { session?: string; name?: string }).session ?? (a as { name?: string }).name);
      }
    };
  // The SDK's generic tool signature is wide; the handlers are checked against our own types.
  const reg = server.registerTool.bind(server) as unknown as (
    name: string,
    config: { title: string; description: string; inputSchema: Record<string, z.ZodType>; annotations?: Record<string, boolean> },
    cb: (a: never, extra: Extra) => Promise<ToolResult>,
  ) => void;

  reg("list_sessions", { title: "List sessions", description: "Sessions of the daemon and their state (alive, dead with the reason, remote).", inputSchema: {}, annotations: { readOnlyHint: true } }, wrap(() => tools.listSessions()));
  reg(
    "new_session",
    {
      title: "Create a session",
      description: "Start a persistent Python session (a process of its own). An existing name is refused unless replace is true (which ends the old one and its namespace).",
      inputSchema: {
        name: session,
        replace: z.boolean().optional(),
        python: z.string().optional().describe("interpreter path (default: python3)"),
        cwd: z.string().optional().describe("working directory (default: the server's)"),
      },
    },
    wrap((a: { name: string; replace?: boolean; python?: string; cwd?: string }) => tools.newSession(a)),
  );
  reg(
    "run",
    {
      title: "Run Python code",
      description:
        "Run code on the session's main thread, REPL-style (a final expression is printed). Returns the output and traceback if the " +
        "cell ends within the deadline; otherwise the cell id and output so far (the cell keeps running: use wait / cell_status / interrupt). " +
        "Long output comes as head and tail (read_output pages the rest); matplotlib figures (plt.show() or a figure as the last value) come back as images.",
      inputSchema: {
        session,
        code: z.string().describe("Python code"),
        timeout: z.number().positive().optional().describe("interrupt the cell after this many seconds (KeyboardInterrupt; the session stays alive). Default: none"),
        deadline,
      },
    },
    wrap((a: { session: string; code: string; timeout?: number; deadline?: number }, extra) => tools.run(a, progressOf(extra), extra.signal)),
  );
  reg(
    "cell_status",
    { title: "Cell state and output", description: "State (running, done, error) and output so far of a cell (the latest one without cell_id).", inputSchema: { session, cell_id: cellId.optional() }, annotations: { readOnlyHint: true } },
    wrap((a: { session: string; cell_id?: string }) => tools.cellStatus(a)),
  );
  reg(
    "wait",
    { title: "Wait for a cell", description: "Wait for a running cell to end, up to the deadline (then: still running, with its output so far).", inputSchema: { session, cell_id: cellId, deadline }, annotations: { readOnlyHint: true } },
    wrap((a: { session: string; cell_id: string; deadline?: number }, extra) => tools.wait(a, progressOf(extra), extra.signal)),
  );
  reg(
    "interrupt",
    { title: "Interrupt", description: "Interrupt what runs in the session (KeyboardInterrupt in the running cell, fire threads best effort, forks killed); says what it interrupted.", inputSchema: { session } },
    wrap((a: { session: string }) => tools.interrupt(a)),
  );
  reg("list_variables", { title: "List variables", description: "Public names defined in the session's namespace.", inputSchema: { session }, annotations: { readOnlyHint: true } }, wrap((a: { session: string }) => tools.listVariables(a)));
  reg(
    "read_output",
    {
      title: "Read output bytes",
      description: "A byte range of a cell's full output (for output that was shown truncated).",
      inputSchema: { session, cell_id: cellId, offset: z.number().int().min(0).optional().describe("byte offset (default 0)"), length: z.number().int().positive().optional().describe("bytes (default 16000)") },
      annotations: { readOnlyHint: true },
    },
    wrap((a: { session: string; cell_id: string; offset?: number; length?: number }) => tools.readOutput(a)),
  );
  reg(
    "kill_session",
    { title: "Kill a session", description: "End the session's process; its namespace is lost.", inputSchema: { name: session }, annotations: { destructiveHint: true } },
    wrap((a: { name: string }) => tools.killSession(a)),
  );
  registerNodeTools(reg, wrap, nodeTools);
  return server;
}

type Reg = (
  name: string,
  config: { title: string; description: string; inputSchema: Record<string, z.ZodType>; annotations?: Record<string, boolean> },
  cb: (a: never, extra: Extra) => Promise<ToolResult>,
) => void;
type Wrap = <A>(fn: (a: A, extra: Extra) => Promise<ToolResult>) => (a: A, extra: Extra) => Promise<ToolResult>;

/** The fleet's tools (src/mcp/nodes.ts): nodes, shell commands with the soft deadline, files. */
function registerNodeTools(reg: Reg, wrap: Wrap, t: NodeTools): void {
  const node = z.string().describe("node id, as list_nodes shows it");
  const jobId = z.string().describe("job id, as node_sh reported it");
  reg("list_nodes", { title: "List nodes", description: "Machines joined to this hub (a daemon with --listen): state, host, labels, sessions.", inputSchema: {}, annotations: { readOnlyHint: true } }, wrap(() => t.listNodes()));
  reg(
    "node_sh",
    {
      title: "Shell command on a node",
      description:
        "Run a shell command on a node ($SHELL -c, in the node user's home unless cwd). Returns stdout, stderr and the exit code if it ends within the deadline; " +
        "otherwise the job id and output so far (the command keeps running: node_job waits, shows or kills it). Long output comes as head and tail (node_job pages the rest). No stdin.",
      inputSchema: {
        node,
        command: z.string().describe("shell command line"),
        timeout: z.number().positive().optional().describe("end the command after this many seconds (SIGTERM to its process group, SIGKILL 3 s later; exit 124). Default: none"),
        cwd: z.string().optional().describe("working directory on the node (default: the node user's home)"),
        deadline,
      },
    },
    wrap((a: { node: string; command: string; timeout?: number; cwd?: string; deadline?: number }, extra) => t.sh({ ...a, deadline: a.deadline ?? DEFAULT_DEADLINE_S }, progressOf(extra), extra.signal)),
  );
  reg(
    "node_job",
    {
      title: "A command's job on a node",
      description:
        "A command started by node_sh (or pysh sh --detach): action wait (default: up to the deadline), status (output so far), kill (SIGTERM to its group, SIGKILL 3 s later). " +
        "With stream/offset/length: that byte range of its stdout or stderr.",
      inputSchema: {
        node,
        job_id: jobId,
        action: z.enum(["wait", "status", "kill"]).optional(),
        deadline,
        stream: z.enum(["stdout", "stderr"]).optional().describe("page this stream (with offset, length)"),
        offset: z.number().int().min(0).optional().describe("byte offset (default 0)"),
        length: z.number().int().positive().optional().describe(`bytes (default ${READ_DEFAULT}, at most ${READ_MAX})`),
      },
    },
    wrap((a: { node: string; job_id: string; action?: "wait" | "status" | "kill"; deadline?: number; stream?: "stdout" | "stderr"; offset?: number; length?: number }, extra) =>
      t.job({ ...a, deadline: a.deadline ?? DEFAULT_DEADLINE_S }, progressOf(extra), extra.signal),
    ),
  );
  reg(
    "node_read_file",
    {
      title: "Read a file on a node",
      description: `A text file on a node (path relative to the node user's home, or absolute): a byte range (default the first ${READ_DEFAULT} bytes, at most ${READ_MAX}) with the file's size and the next offset. A binary file is reported as such, not shown.`,
      inputSchema: {
        node,
        path: z.string().describe("file path on the node"),
        offset: z.number().int().min(0).optional().describe("first byte (default 0)"),
        length: z.number().int().positive().optional().describe(`bytes (default ${READ_DEFAULT}, at most ${READ_MAX})`),
      },
      annotations: { readOnlyHint: true },
    },
    wrap((a: { node: string; path: string; offset?: number; length?: number }) => t.readFile(a)),
  );
  reg(
    "node_write_file",
    {
      title: "Write a file on a node",
      description: "Write text to a file on a node (path relative to the node user's home, or absolute; its directory must exist), atomically: readers see the old file or the whole new one. Replaces an existing file.",
      inputSchema: { node, path: z.string().describe("file path on the node"), content: z.string().describe("the file's whole content") },
      annotations: { destructiveHint: true },
    },
    wrap((a: { node: string; path: string; content: string }) => t.writeFile(a)),
  );
}

export async function serve(): Promise<void> {
  const server = buildServer();
  const transport = new StdioServerTransport();
  await server.connect(transport);
  // The client closing stdin ends the server (cells it started run on in their sessions).
  await new Promise<void>((resolve) => {
    server.server.onclose = resolve;
    process.stdin.on("end", () => void server.close().then(resolve, resolve));
  });
}
