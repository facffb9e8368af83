/**
 * `pysh mcp [--print-config]`: thin entry. The server (and the MCP SDK) is imported only here.
 */
import { basename } from "node:path";
import { line } from "../cli/out.ts";

const HELP = `pysh mcp -- Model Context Protocol server (stdio) for the running daemon

  pysh mcp                  serve MCP on stdin/stdout (start it from an MCP client)
  pysh mcp --print-config   print the JSON to add this server to an MCP client

Environment: as pysh (PYTHOND_SOCK, PYTHOND_HOST/PYTHOND_TOKEN/PYTHOND_TLS), and
PYTHOND_MCP_DEADLINE (seconds run waits before answering "still running", default 20),
PYTHOND_MCP_MAX_OUTPUT (characters of output per answer before head+tail, default 12000),
PYTHOND_MCP_KEEP_OUTPUT (characters of a cell's output kept for read_output, default 32 Mi).`;

/** The JSON most MCP clients take (Claude Desktop, Claude Code's .mcp.json, Cursor, Windsurf...). */
export function mcpConfig(): Record<string, unknown> {
  const env: Record<string, string> = {};
  for (const k of ["PYTHOND_SOCK", "PYTHOND_HOST", "PYTHOND_TLS"]) if (process.env[k]) env[k] = process.env[k]!;
  // The binary itself with the role as first argument works wherever the pysh symlink is missing.
  const self = process.execPath;
  const args = basename(self) === "pysh" ? ["mcp"] : ["pysh", "mcp"];
  return { mcpServers: { pythond: { command: self, args, ...(Object.keys(env).length ? { env } : {}) } } };
}

export async function mcpMain(argv: string[]): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    line(HELP);
    return 0;
  }
  if (argv[0] === "--print-config") {
    line(JSON.stringify(mcpConfig(), null, 2));
    return 0;
  }
  if (argv.length) {
    line(HELP);
    return 1;
  }
  const { serve } = await import("./server.ts");
  await serve();
  return 0;
}
