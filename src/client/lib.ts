/**
 * The TypeScript client library (`import { connect } from "pythond/client"`): what pysh does, as
 * typed calls. It connects exactly as pysh does (the local socket from PYTHOND_SOCK and the same
 * path rules, or PYTHOND_HOST/PYTHOND_TOKEN/PYTHOND_TLS with pinned certificates; or the same
 * given as options) and speaks pythond.1, so `run` streams.
 *
 *   const c = await connect();
 *   const s = await c.new("work");
 *   const r = await s.run("x = 41\nprint(x + 1)");   // r.ok, r.output "42\n", r.cellId
 *   for await (const chunk of s.stream("for i in range(3): print(i)")) process.stdout.write(chunk);
 *   // on a hub (src/client/fleet*.ts): its nodes, shell commands, jobs, fan-out, files
 *   await c.waitForNode("worker-1", { timeoutMs: 30_000 });
 *   const h = await c.sh("worker-1", "hostname");        // h.stdoutText, h.exitCode, h.timedOut
 *   for await (const r of c.shMany("role=web", "uptime")) console.log(r.node, r.status);
 *   await c.put("worker-1", "./model.bin", "models/");
 *   c.close();
 *
 * One connection answers its frames in order, so calls on one client are queued here: a call
 * starts when the previous one has its reply. Use several clients for concurrent calls.
 * Failures are PythondError with the stable code of src/protocol/errors.ts; a cell that raised is
 * not a failure of the call: its result has ok false and the traceback in `error`
 * (`result.check()` turns it into an execution_failed error).
 */
import { PythondError } from "../protocol/errors.ts";
import { buildFrame } from "../protocol/frame.ts";
import { OK, cellIdOf, isError } from "../protocol/replies.ts";
import { socketPath } from "../paths.ts";
import { Client, type Message } from "./connect.ts";
import type { RemoteEndpoint } from "./remote.ts";
import { ReplyErrorWithCode, classifyError, parseLs, type CellState, type SessionInfo, type SessionStatus } from "./replies.ts";
import { FleetCalls } from "./fleet-client.ts";

export { PythondError } from "../protocol/errors.ts";
export type { ErrorCode } from "../protocol/errors.ts";
export { classifyError, type CellState, type SessionInfo, type SessionStatus } from "./replies.ts";
export { NodeCommandLost, ShStream, type JobOptions, type ShChunk, type ShOptions, type Stdin } from "./fleet.ts";
export type { Selector, ShManyOptions } from "./fleet-fanout.ts";
export type { FileRead, ReadOptions, TransferOptions } from "./fleet-files.ts";
export { ShResult, type JobInfo, type JobState, type NodeInfo, type NodeShResult, type ShExit, type TransferSummary } from "./fleet-results.ts";

export interface ConnectOptions {
  /** A local daemon's socket (default: as pysh, PYTHOND_SOCK and the runtime-directory rules). */
  socket?: string;
  /** A remote daemon, `HOST:PORT` (default: PYTHOND_HOST). */
  host?: string;
  /** Its token (default: PYTHOND_TOKEN). */
  token?: string;
  /** TLS (default: PYTHOND_TLS, and always for a non-loopback host); the server's certificate must be pinned (`pyctl pin`). */
  tls?: boolean;
}

/** The end of a cell: what it printed, whether it succeeded, and its traceback if not. */
export class RunResult {
  constructor(
    readonly cellId: string | undefined,
    readonly output: string,
    readonly ok: boolean,
    /** The traceback (or why the cell failed) when not ok; "" otherwise. */
    readonly error: string,
  ) {}
  /** Throws an execution_failed PythondError (message: the traceback) unless the cell succeeded. */
  check(): this {
    if (!this.ok) throw new PythondError("execution_failed", this.error || "execution failed");
    return this;
  }
}

export interface NewOptions {
  replace?: boolean;
  /** The interpreter (default: the daemon's python3). */
  python?: string;
  /** Working directory of the session (default: this process's). */
  cwd?: string;
  /** End the session after this many idle seconds. */
  idleTimeout?: number;
}

/**
 * A name must fit in a frame's first line as one word; whether it names a session (`work`, or
 * `srv/work` behind a proxy or node) is the daemon's to say (invalid_name, no_session).
 */
function frameName(name: string): string {
  if (typeof name !== "string" || !/^[^\s\x00-\x1f]{1,200}$/.test(name)) {
    throw new PythondError("invalid_name", `invalid session name ${JSON.stringify(name)} (lowercase a-z 0-9 _ -, 1 to 80 characters)`);
  }
  return name;
}

export async function connect(opts: ConnectOptions = {}): Promise<PythondClient> {
  let remote: RemoteEndpoint | null | undefined;
  if (opts.host) {
    const r = await import("./remote.ts");
    const { host, port } = r.parseHostPort(opts.host, "host");
    const token = opts.token ?? process.env.PYTHOND_TOKEN;
    if (!token) throw new PythondError("auth_failed", `no token for ${opts.host} (pass token, or set PYTHOND_TOKEN)`);
    remote = { host, port, tls: r.decideTls(host, opts.tls === undefined ? process.env.PYTHOND_TLS : opts.tls), token };
  } else if (opts.socket) remote = null;
  // Node commands and transfers each take a connection of their own, opened the same way.
  const open = () => Client.open({ socket: opts.socket, remote });
  const client = new PythondClient(await open(), open);
  // Over TCP the daemon answers a bad token (or certificate) with its first frame: ask now, so
  // that connect() is where auth fails, as users expect.
  if (client.connection.endpoint !== (opts.socket ?? socketPath())) await client.hello();
  return client;
}

/** Session calls here; the fleet's (nodes, sh, shMany, put, get, …) come from FleetCalls (fleet-client.ts). */
export class PythondClient extends FleetCalls {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    readonly connection: Client,
    /** Opens another connection to the same daemon (node commands: one each). */
    readonly openConnection: () => Promise<Client> = () => Client.open(),
  ) {
    super();
  }

  /** Replies carry their error code (the daemon speaks pythond.1+codes); else they are classified by message. */
  get codes(): boolean {
    return (this.connection as unknown as { codes?: boolean }).codes === true;
  }

  /** Runs `fn` when every earlier call on this connection has its reply. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.queue.then(fn, fn);
    this.queue = p.catch(() => {});
    return p;
  }

  /** One command, one text reply; `ERR …` is thrown with its code. */
  request(cmd: string, args: string[] = [], body?: string): Promise<string> {
    return this.exclusive(async () => {
      this.connection.send(buildFrame(cmd, args, body));
      const reply = await this.connection.nextText();
      if (isError(reply)) throw new ReplyErrorWithCode(reply, this.codes);
      return reply;
    });
  }

  async json<T>(cmd: string, args: string[] = [], body?: string): Promise<T> {
    return JSON.parse(await this.request(cmd, args, body)) as T;
  }

  /** Creates a session and returns it (`replace` ends one of that name first). */
  async new(name: string, opts: NewOptions = {}): Promise<Session> {
    // Paths travel percent-encoded (frames split on spaces), as pysh sends them.
    const args = [frameName(name), "--cwd", encodeURIComponent(opts.cwd ?? process.cwd())];
    if (opts.replace) args.push("--replace");
    if (opts.python) args.push("--python", encodeURIComponent(opts.python));
    if (opts.idleTimeout) args.push("--idle-timeout", String(opts.idleTimeout));
    await this.request("new", args);
    return this.session(name);
  }

  /** A handle on an existing session (nothing is sent until it is used). */
  session(name: string): Session {
    return new Session(this, frameName(name));
  }

  async ls(): Promise<SessionInfo[]> {
    return parseLs(await this.request("ls"));
  }

  /** The daemon's version, protocol, pid and listeners. */
  hello(): Promise<{ version: string; protocol: number; pid: number; socket: string; listen: string[] }> {
    return this.json("hello");
  }

  close(): void {
    this.connection.close();
  }
}

export interface RunOptions {
  /** Interrupt the cell after this many seconds (as Ctrl-C would); the session lives on. */
  timeout?: number;
  /** Called with each piece of output as the cell produces it. */
  onOutput?: (text: string) => void;
  /** Called with the cell id before any output. */
  onCell?: (cellId: string) => void;
}

export class Session {
  constructor(
    readonly client: PythondClient,
    readonly name: string,
  ) {}

  /** Runs code on the session's main thread and returns when it ends (output streams to onOutput). */
  run(code: string, opts: RunOptions = {}): Promise<RunResult> {
    const args = [this.name, ...(opts.timeout ? ["--timeout", String(opts.timeout)] : [])];
    return this.streamed("run", args, code, opts);
  }

  /** Runs code and yields its output as produced; `.result` settles with the end. */
  stream(code: string, opts: Omit<RunOptions, "onOutput"> = {}): CellStream {
    return new CellStream((onOutput) => this.run(code, { ...opts, onOutput }));
  }

  /** Waits for a cell (fire, fork, or a run whose client went away) and returns its result. */
  wait(cellId: string, opts: RunOptions = {}): Promise<RunResult> {
    const args = [this.name, cellId, ...(opts.timeout ? ["--timeout", String(opts.timeout)] : [])];
    return this.streamed("wait", args, undefined, opts);
  }

  /** Starts code in a thread sharing the namespace; returns its cell id. */
  async fire(code: string): Promise<string> {
    return (await this.client.json<{ cell_id: string }>("fire", [this.name], code)).cell_id;
  }

  /** Starts code in a forked child (POSIX); picklable new names merge back; returns its cell id. */
  async fork(code: string): Promise<string> {
    return (await this.client.json<{ cell_id: string }>("fork", [this.name], code)).cell_id;
  }

  /** A cell's state (the latest cell without an id). */
  poll(cellId?: string): Promise<CellState> {
    return this.client.json("poll", cellId ? [this.name, cellId] : [this.name]);
  }

  /** Interrupts what runs: returns the daemon's account (`OK int work: 1 run (interrupted)`). */
  interrupt(): Promise<string> {
    return this.client.request("int", [this.name]);
  }

  async vars(): Promise<string[]> {
    return (await this.client.json<{ vars: string[] }>("vars", [this.name])).vars;
  }

  async complete(text: string): Promise<string[]> {
    return (await this.client.json<{ matches: string[] }>("complete", [this.name], text)).matches;
  }

  status(): Promise<SessionStatus> {
    return this.client.json("status", [this.name]);
  }

  async kill(): Promise<void> {
    await this.client.request("kill", [this.name]);
  }

  private streamed(cmd: string, args: string[], body: string | undefined, opts: RunOptions): Promise<RunResult> {
    return this.client.exclusive(async () => {
      const conn = this.client.connection;
      conn.send(buildFrame(cmd, args, body));
      const dec = new TextDecoder();
      let output = "";
      let cellId: string | undefined;
      let failed: { error: unknown } | undefined;
      const emit = (text: string) => {
        if (failed || !opts.onOutput) return;
        try {
          opts.onOutput(text);
        } catch (error) {
          failed = { error };
        }
      };
      for (;;) {
        let m: Message;
        try {
          m = await conn.next();
        } catch (e) {
          if (cellId && e instanceof PythondError) {
            throw new PythondError(e.code, `${e.message} -- cell ${cellId} keeps running; wait for it with session.wait("${cellId}")`);
          }
          throw e;
        }
        if ("binary" in m) {
          const text = dec.decode(m.binary, { stream: true });
          output += text;
          if (text) emit(text);
          continue;
        }
        const started = cellIdOf(m.text);
        if (started !== undefined) {
          cellId = started;
          try {
            opts.onCell?.(cellId);
          } catch (error) {
            failed ??= { error };
          }
          continue;
        }
        const tail = dec.decode();
        if (tail) {
          output += tail;
          emit(tail);
        }
        // A callback that threw: its error, now that the reply was read to its end (the
        // connection stays in step for the next call).
        if (failed) throw failed.error;
        if (m.text === OK) return new RunResult(cellId, output, true, "");
        if (isError(m.text)) {
          // `ERR execution failed\n<tb>`, or with a code (`ERR execution_failed: execution failed\n<tb>`).
          const { code, message } = classifyError(m.text, this.client.codes);
          if (code === "execution_failed") return new RunResult(cellId, output, false, message.replace(/^execution failed\n?/, ""));
          throw new ReplyErrorWithCode(m.text, this.client.codes);
        }
        throw new PythondError("internal", `unexpected reply to ${cmd}: ${m.text.slice(0, 200)}`);
      }
    });
  }
}

/** Output of a running cell as an async iterable of text pieces; `result` settles with its end. */
export class CellStream implements AsyncIterable<string> {
  readonly result: Promise<RunResult>;
  private pending: string[] = [];
  private wake?: () => void;
  private done = false;

  constructor(start: (onOutput: (text: string) => void) => Promise<RunResult>) {
    this.result = start((t) => {
      this.pending.push(t);
      this.wake?.();
    });
    const finish = () => {
      this.done = true;
      this.wake?.();
    };
    this.result.then(finish, finish);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<string> {
    for (;;) {
      const t = this.pending.shift();
      if (t !== undefined) {
        yield t;
        continue;
      }
      if (this.done) {
        await this.result; // rethrows a failed call
        return;
      }
      await new Promise<void>((r) => (this.wake = r));
      this.wake = undefined;
    }
  }
}
