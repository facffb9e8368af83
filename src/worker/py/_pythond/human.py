"""What runs on the session's terminal: human blocks, and agent cells shown as they happen.

A human block (a complete statement typed at an attached terminal) runs on the main thread, from
the same queue as agent `run` cells, with Python's interactive rules ("single" mode: every
expression statement is echoed with repr, as at `>>>`). For its duration fds 0/1/2 are the PTY
slave instead of the capture pipe and /dev/null, so subprocesses, C code, `os.get_terminal_size()`
and `getpass` see a real terminal; Python-level writes go straight to the PTY, unbuffered, so a
prompt of `input()` never overtakes earlier prints. The editor waits for `done` meanwhile; Ctrl-C
reaches it (the PTY's foreground process) and it asks us to interrupt the main thread.

Agent `run` cells are announced as `[ai] run: <first line>` and their output is copied to the PTY
while a client is attached. Unattached, nothing is done while the cell runs (a PTY is slower than
the capture path and nobody is watching); when it ends, its header and last TAIL bytes wait for
the next attach.
"""
import ast
import builtins
import os
import rlcompleter
import signal
import sys

from . import capture, cells, execute

TAIL = 2048
MAX_COMPLETIONS = 200
_FLAGS = getattr(ast, "PyCF_ALLOW_TOP_LEVEL_AWAIT", 0)
_counter = [0]


class PtyOut(object):
    """Output of a human block: straight to the PTY, and into the cell's record (session.log).

    Threads the block started keep writing here after it ends; their output then goes through the
    editor (`stray`), which moves the prompt out of the way first.
    """

    def __init__(self, term, cell):
        self.term = term
        self.cell = cell
        self.live = True

    def write_bytes(self, data, owner=None):
        if not self.live:
            return self.term.stray(data)
        self.term.write(data)
        self.cell.out.sink(data)

    def deliver_raw(self, data):
        self.write_bytes(data)

    def flush(self):
        pass


def _displayhook(ns, write):
    def hook(value):
        if value is None:
            return
        ns["_"] = value
        write(repr(value) + "\n")
    return hook


def run_block(w, term, code):
    """A job on the main thread: one human block, output on the PTY, then `done` to the editor."""
    try:
        _run_block(w, term, code)
    finally:
        term.block_done()  # always: the editor waits for it (even after a second, stray Ctrl-C)


def _run_block(w, term, code):
    cell = cells.Cell("human", code)
    w.cells.add(cell)
    out = PtyOut(term, cell)
    _counter[0] += 1
    filename = "<stdin-%d>" % _counter[0]
    saved_in, saved_out = os.dup(0), os.dup(1)
    w.capture.set_owner(out)  # pipe bytes from before go to their owner; stray ones now to the PTY
    for fd in (0, 1, 2):
        os.dup2(term.slave, fd)
    capture.bind_thread(out)
    old_hook = sys.displayhook
    sys.displayhook = _displayhook(w.ns, lambda s: out.write_bytes(s.encode("utf-8", "backslashreplace")))
    result = execute.Result()
    try:
        w.sync_cell = cell  # from here SIGINT raises KeyboardInterrupt, so inside the try
        try:
            execute._register_source(filename, code)
            co = compile(code + "\n", filename, "single", _FLAGS, True)
            execute._run_code(co, w.ns)
        except SystemExit as e:
            result.ok = False
            result.exit_code = e.code
            result.error = "exit(%s)" % ("0" if e.code is None else e.code)
            _confirm_exit(w, term)
        except BaseException as e:  # noqa: B902 - KeyboardInterrupt too: shown, the REPL goes on
            result.ok = False
            result.error = execute.format_exception(e)
            term.write(result.error + "\n")
    except KeyboardInterrupt:  # landed between our own statements (or in the exit question)
        result.ok = False
        result.error = "KeyboardInterrupt"
        term.write("\nKeyboardInterrupt\n")
    finally:
        w.sync_cell = None
        sys.displayhook = old_hook
        os.dup2(saved_out, 1)
        os.dup2(saved_out, 2)
        os.dup2(saved_in, 0)
        os.close(saved_out)
        os.close(saved_in)
        w.capture.set_owner(None)
        capture.bind_thread(None)
    out.live = False
    cell.finish(result, w.history)


def _confirm_exit(w, term):
    """exit() at the terminal ends the session only when the human says so: agents live here too."""
    try:
        answer = term.read_line("End session '%s'? Agents share this namespace; it would be lost. [y/N] " % w.name)
    except EOFError:
        answer = ""
    if answer.strip().lower() not in ("y", "yes"):
        term.write("Session kept. (Ctrl-D or Ctrl-] detaches; the session keeps running.)\n")
        return
    term.write("Ending session '%s'.\n" % w.name)
    reason = "ended at an attached terminal (exit())"
    if hasattr(w.history, "note"):
        w.history.note(reason)
    for conn in list(w.conns.values()):
        conn.send({"op": "bye", "reason": reason})
    for path in (w.config.get("record"), w.config.get("sock")):
        try:
            os.unlink(path)
        except (OSError, TypeError):
            pass
    try:
        import atexit
        atexit._run_exitfuncs()
    finally:
        os._exit(0)


def interrupt(w):
    """Ctrl-C at the terminal while a block or an agent cell runs: the same SIGINT as `pysh int`."""
    if w.sync_cell is not None:
        os.kill(os.getpid(), signal.SIGINT)


def complete(ns, text):
    completer = rlcompleter.Completer(ns)
    matches = []
    try:
        while len(matches) < MAX_COMPLETIONS:
            m = completer.complete(text, len(matches))
            if m is None:
                break
            matches.append(m)
    except Exception:
        pass  # rlcompleter evaluates attribute chains; a failing property means no more matches
    return matches


def _header(code):
    lines = code.strip("\n").split("\n")
    first = lines[0].rstrip() if lines else ""
    if len(first) > 200:
        first = first[:200] + "..."
    more = "  (+%d lines)" % (len(lines) - 1) if len(lines) > 1 else ""
    return ("[ai] run: %s%s\n" % (first, more)).encode("utf-8", "backslashreplace")


def _tail(cell):
    """(the last TAIL bytes the cell has printed, how many bytes it printed), under cell.out.lock."""
    total = cell.kept + cell.dropped
    chunks = cell.chunks
    if not chunks:
        return b"", total
    last = chunks[-1]
    if len(last) >= TAIL or len(chunks) == 1:
        return last[-TAIL:], total
    parts = []
    size = 0
    for c in reversed(chunks):
        parts.append(c)
        size += len(c)
        if size >= TAIL:
            break
    return b"".join(reversed(parts))[-TAIL:], total


def _skipped_note(tail, total):
    hidden = total - len(tail)
    return b"[... %d bytes not shown: no terminal was attached ...]\n" % hidden if hidden > 0 else b""


class AgentShow(object):
    """One agent `run` cell shown live on the attached terminal: the editor is paused (the prompt
    moves out of the way), the header and what the cell printed so far are shown, then its output
    as it comes, then its error."""

    def __init__(self, term, cell):
        self.term = term
        self.orig = cell.out.sink
        tail, total = _tail(cell)  # a cell that ran unwatched until a client attached
        self.ends_nl = not tail or tail.endswith(b"\n")
        cell.out.sink = self
        term.pause_editor()
        term.write(_header(cell.code) + _skipped_note(tail, total) + tail)

    def __call__(self, data):
        self.orig(data)
        self.term.write(data)
        self.ends_nl = data.endswith(b"\n")

    def end(self, cell):
        if cell.out.sink is self:
            cell.out.sink = self.orig
        text = b"" if self.ends_nl else b"\n"
        if cell.status == "error" and cell.error:
            text += (cell.error + "\n").encode("utf-8", "backslashreplace")
        self.term.write(text)
        self.term.resume_editor()


class QuietRecord(object):
    """An agent `run` cell that ended with nobody attached: what the terminal shows of it at the
    next attach (header, the last TAIL bytes of output, error), rendered only then. It keeps none
    of the cell (its output record may hold megabytes that eviction must be able to free)."""
    __slots__ = ("code", "tail", "total", "error", "size")

    def __init__(self, cell):
        """Taken under cell.out.lock (agent_end), so no output lands while the tail is read."""
        self.code = cell.code
        self.tail, self.total = _tail(cell)
        self.error = cell.error if cell.status == "error" else ""
        self.size = len(self.code) + len(self.tail) + len(self.error) + 80  # about len(render())

    def render(self):
        text = _header(self.code) + _skipped_note(self.tail, self.total) + self.tail
        if self.tail and not self.tail.endswith(b"\n"):
            text += b"\n"
        if self.error:
            text += (self.error + "\n").encode("utf-8", "backslashreplace")
        return text


def agent_begin(w, cell):
    """An agent `run` cell starts: shown live if a client is attached; otherwise the terminal
    notes it as its quiet cell, so that a client attaching mid-cell takes it live
    (Terminal.attach -> agent_attached). Returns what agent_end needs."""
    term = w.terminal
    if term is None:
        return None
    if term.viewers:  # a dict read: no lock needed to peek
        return AgentShow(term, cell)
    term.quiet_cell = cell
    return term


def agent_attached(term, wait=False):
    """A client is attached: the quiet cell running now, if any, goes live. Under the cell's
    output lock (no delivery meanwhile), which the IO thread only tries to take: a cell waiting
    for acknowledgements holds it, and the IO thread is the one that reads them. Then the capture
    thread's next ticks (wait=True: a short wait each) do it (MainThread._flush_corked)."""
    cell = term.quiet_cell
    if cell is None:
        return
    lock = cell.out.lock
    if not (lock.acquire(True, 0.01) if wait else lock.acquire(False)):
        return
    try:
        if term.quiet_cell is cell and cell.status == "running" and term.viewers and not isinstance(cell.out.sink, AgentShow):
            AgentShow(term, cell)
    finally:
        lock.release()


def agent_end(cell, shown):
    """The cell's reply is out: the terminal's part (shown: what agent_begin returned)."""
    if shown is None:
        return
    if shown.__class__ is AgentShow:
        shown.end(cell)
        return
    term = shown
    with cell.out.lock:
        term.quiet_cell = None
        live = cell.out.sink
        quiet = QuietRecord(cell) if live.__class__ is not AgentShow else None
    if quiet is None:  # a client attached mid-cell
        live.end(cell)
    else:
        term.stray(quiet)  # rendered when shown: nobody may ever attach


class _TermStdin(object):
    """sys.stdin: a human block reads the terminal; anything else gets the agent's clear error."""

    def __init__(self, term, agent):
        self._term = term
        self._agent = agent

    def _human(self):
        return isinstance(capture.current_out(), PtyOut)

    def readline(self, *a):
        if not self._human():
            return self._agent.readline(*a)
        try:
            return self._term.read_line() + "\n"
        except EOFError:
            return ""

    def read(self, *a):
        if not self._human():
            return self._agent.read(*a)
        parts = []
        while True:
            line = self.readline()
            if not line:
                return "".join(parts)
            parts.append(line)

    def isatty(self):
        return self._human()

    def __getattr__(self, name):
        return getattr(self._agent, name)


def install(w, term):
    agent_input = builtins.input

    def input(prompt=""):
        if isinstance(capture.current_out(), PtyOut):
            return term.read_line(str(prompt))
        return agent_input(prompt)

    builtins.input = input
    sys.stdin = _TermStdin(term, sys.stdin)


def async_note(w, cell, phase):
    """fire and fork cells on the attached terminal, as run cells are: `[ai] fire <id>: <first
    line>` when one starts, and when it ends its status and the last TAIL bytes of its output (or
    its error). Unattached, the note waits for the next attach (Terminal.stray)."""
    term = w.terminal
    if term is None:
        return
    label = ("[ai] %s %s" % (cell.kind, cell.id)).encode()
    if phase == "start":
        term.stray(_header(cell.code).replace(b"[ai] run", label, 1))
        return
    out = cell.output_text()
    if cell.status == "error" and cell.error:
        out = (out + "\n" if out else "") + cell.error
    out = out[-TAIL:]
    if out and not out.endswith("\n"):
        out += "\n"
    term.stray(label + (" %s\n" % cell.status).encode() + out.encode("utf-8", "backslashreplace"))
