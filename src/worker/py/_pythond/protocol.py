"""The daemon <-> worker contract, Python side: mirrored by src/protocol/worker.ts, which reads
WORKER_PROTOCOL from this file (one number for both sides). Bump it when the framing (wire.py) or
any message below changes, so a daemon adopting workers of another build can tell.

Requests from the daemon (header `op`, `rid`; body as noted) and what the worker answers:
  hello {secret, v, lane?}   -> hello {ok, v, pid, name, lanes} (no rid; the first frame of a lane)
  run {timeout?} + code      -> start {cell}, out {cell} + bytes ..., end {cell, ok, error, exit_code}
  ack {cell, n}              (no answer) the daemon passed n bytes of the cell's output on
  fire, fork + code          -> reply {ok, data: {cell_id, ...}}
  poll {cell?}, wait {cell, timeout?}, status, vars, complete + text, int, claim {session}
                             -> reply {ok, data} | reply {ok: false, code, error}
  attach {aid, rows?, cols?} -> reply, then tout {aid} + scrollback; detach {aid}; tin {aid} + keys;
                                resize {rows, cols}          (only when the session has a PTY)
Frames the worker sends on its own: tout + bytes (live terminal output), tdetach {aid}, bye {reason}.
"""

WORKER_PROTOCOL = 1

# Ops every worker serves, and the ones that need its terminal.
CORE_OPS = ("claim", "run", "ack", "fire", "fork", "poll", "wait", "status", "vars", "complete", "int")
TERMINAL_OPS = ("attach", "detach", "tin", "resize")
# Frames from the worker.
WORKER_FRAMES = ("hello", "reply", "start", "out", "end", "tout", "tdetach", "bye")
