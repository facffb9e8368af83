"""The line editor of a session's terminal: a small Python process on the worker's PTY.

Started by the worker (terminal.py) at the first attach, in its own session with the PTY slave as
controlling terminal and fds 0/1/2, so GNU readline works as in `python3` itself: editing, history
(~/.pythond/sessions/<name>/repl_history), tab completion (asked of the worker, which owns the
namespace), multi-line blocks (codeop decides when a block is complete). Complete blocks go to the
worker, which runs them on its main thread; this process holds no namespace.

Messages, JSON lines over the socketpair:
  to the worker:   exec {code} | complete {id, text} | int | paused {n} | detach
  from the worker: done | pause {n} | resume | print {data} | matches {id, m}

Screen ownership: while the prompt is up, the worker asks (`pause`) before writing an agent cell;
the reader thread wakes the main thread out of readline with SIGUSR1 (the only way out of
readline's select), the handler keeps the half-typed line, the prompt line is cleared, `paused`
goes back, and after `resume` the prompt returns with the line restored. Ctrl-C while the worker
runs something is forwarded as `int`; at the prompt it discards the line, as in Python.
"""
import codeop
import fcntl
import json
import os
import queue
import readline
import signal
import socket
import sys
import termios
import threading
import time

PS1, PS2 = ">>> ", "... "
HISTORY_MAX = 1000


class Wake(Exception):
    """Raised out of input() when the worker needs the screen; args[0]: the prompt is showing."""


class Editor(object):
    def __init__(self, cfg):
        self.cfg = cfg
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, fileno=cfg["fd"])
        self.send_lock = threading.Lock()
        self.lock = threading.Lock()
        self.state = "prompt"  # prompt | wait (a block runs) | paused (an agent cell runs)
        self.in_readline = False
        self.want_pause = None  # the number of a pause the worker waits for
        self.prints = []
        self.added_nl = False  # the last print got a newline from us
        self.events = queue.Queue()
        self.replies = {}
        self.reply_cond = threading.Condition()
        self.next_id = 0
        self.saved = ""
        self.prompt = PS1
        self.main = threading.get_ident()
        self.compiler = codeop.CommandCompiler()
        self.compiler.compiler.flags |= getattr(__import__("ast"), "PyCF_ALLOW_TOP_LEVEL_AWAIT", 0)

    def send(self, msg):
        with self.send_lock:
            self.sock.sendall((json.dumps(msg) + "\n").encode())

    # -- reader thread ------------------------------------------------------------------------
    def reader(self):
        for raw in self.sock.makefile("rb"):
            msg = json.loads(raw)
            t = msg.get("t")
            if t == "matches":
                with self.reply_cond:
                    self.replies[msg.get("id")] = msg.get("m") or []
                    self.reply_cond.notify_all()
            elif t == "pause":
                # Answered by the main thread only, in the order of the other events: answering
                # here could overtake a `resume` or `done` not yet handled, after which the main
                # thread would draw a prompt in the middle of the agent's output.
                with self.lock:
                    self.want_pause = msg.get("n", 0)
                self.events.put("pause")
                self.kick()
            elif t == "print":
                data = msg.get("data", "").encode("latin-1")
                with self.lock:
                    if self.state != "prompt":
                        os.write(1, data)
                        continue
                    self.prints.append(data)
                self.kick()
            else:
                self.events.put(t)
        os._exit(0)  # the worker is gone, and so is the session

    def kick(self):
        """Signals the main thread until it has left readline (a signal may land in a callback)."""
        def loop():
            while True:
                with self.lock:
                    if self.want_pause is None and not self.prints:
                        return
                    if self.in_readline:
                        signal.pthread_kill(self.main, signal.SIGUSR1)
                time.sleep(0.01)
        threading.Thread(target=loop, daemon=True).start()

    # -- signals (main thread) ----------------------------------------------------------------
    def on_usr1(self, signum, frame):
        # Raise only from readline's own wait for a key. Inside one of our callbacks (completer,
        # pre-input hook: then `frame` is theirs, not read_line's) readline would swallow the
        # exception; just after input() returned, it would lose the line (readline restores
        # canonical mode before returning, so ICANON tells). Not raising is always safe: kick()
        # signals again 10 ms later.
        if not self.in_readline or (self.want_pause is None and not self.prints):
            return
        if frame is None or frame.f_code is not _READ_LINE_CODE:
            return
        try:
            if termios.tcgetattr(0)[3] & termios.ICANON:
                return
        except termios.error:
            return
        self.saved = readline.get_line_buffer()
        self.in_readline = False
        raise Wake(True)

    def on_sigint(self, signum, frame):
        if self.state != "prompt":
            # From a thread: the main thread may be inside send() holding its lock right now.
            threading.Thread(target=self.send, args=({"t": "int"},), daemon=True).start()
            return
        raise KeyboardInterrupt

    # -- main thread --------------------------------------------------------------------------
    def read_line(self):
        try:
            with self.lock:
                if self.want_pause is not None or self.prints:
                    raise Wake(False)
                self.in_readline = True
            return input(self.prompt)
        finally:
            self.in_readline = False

    def pre_input(self):
        if self.saved:
            readline.insert_text(self.saved)
            self.saved = ""
            readline.redisplay()

    def wake(self, drawn):
        if drawn:  # clear the prompt and the half-typed line (up to the rows it wraps onto)
            try:
                cols = max(os.get_terminal_size(1).columns, 1)
            except OSError:
                cols = 80
            up = (len(self.prompt) + len(self.saved)) // cols
            os.write(1, (b"\x1b[%dA" % up if up else b"") + b"\r\x1b[J")
        with self.lock:
            prints, self.prints = self.prints, []
            pause, self.want_pause = self.want_pause, None
            if pause is not None:
                self.state = "paused"
        for data in prints:
            # Each print ends its line (the prompt follows); print()'s separate "\n" then is not doubled.
            if self.added_nl and data.startswith(b"\n"):
                data = data[1:]
            self.added_nl = bool(data) and not data.endswith(b"\n")
            os.write(1, data + b"\n" if self.added_nl else data)
        if pause is not None:
            old = termios.tcgetattr(0)
            quiet = list(old)
            quiet[3] &= ~termios.ECHO  # type-ahead waits unseen for the prompt, as in readline
            termios.tcsetattr(0, termios.TCSANOW, quiet)
            try:
                self.send({"t": "paused", "n": pause})
                self.wait_for("resume")
            finally:
                termios.tcsetattr(0, termios.TCSANOW, old)
                with self.lock:
                    self.state = "prompt"

    def wait_for(self, kind):
        """Waits for `done` or `resume`. Nothing is drawn meanwhile, so a pause is answered at once."""
        while True:
            event = self.events.get()
            if event == kind:
                return
            if event == "pause":
                with self.lock:
                    n, self.want_pause = self.want_pause, None
                if n is not None:
                    self.send({"t": "paused", "n": n})
            # else: a `resume` of a pause answered while a block was queued

    def run_block(self, source):
        with self.lock:
            self.state = "wait"
            prints, self.prints = self.prints, []
            n, self.want_pause = self.want_pause, None
            if n is not None:
                self.send({"t": "paused", "n": n})
        for data in prints:
            os.write(1, data)
        self.send({"t": "exec", "code": source})
        self.wait_for("done")
        with self.lock:
            self.state = "prompt"

    def complete(self, text, state):
        if state == 0:
            with self.reply_cond:
                self.next_id += 1
                rid = self.next_id
            self.send({"t": "complete", "id": rid, "text": text})
            with self.reply_cond:
                self.reply_cond.wait_for(lambda: rid in self.replies, 2.0)
                self.matches = self.replies.pop(rid, [])
        return self.matches[state] if state < len(self.matches) else None

    def loop(self):
        lines = []
        while True:
            self.prompt = PS2 if lines else PS1
            try:
                try:
                    line = self.read_line()
                except Wake as w:
                    self.wake(w.args[0])
                    continue
                except EOFError:  # Ctrl-D detaches this client; the session goes on
                    os.write(1, b"\n")
                    lines = []
                    self.send({"t": "detach"})
                    continue
                self.save_history()
                lines.append(line)
                source = "\n".join(lines)
                try:
                    complete = self.compiler(source, "<stdin>", "single") is not None
                except (SyntaxError, OverflowError, ValueError):
                    complete = True  # the worker compiles it again and shows the error
                if not complete:
                    continue
                lines = []
                if source.strip():
                    self.run_block(source)
            except KeyboardInterrupt:
                os.write(1, b"\nKeyboardInterrupt\n")
                lines = []
                self.saved = ""

    def save_history(self):
        try:
            readline.append_history_file(1, self.cfg["history"])
        except (OSError, AttributeError):
            pass


_READ_LINE_CODE = Editor.read_line.__code__


def setup_readline(ed):
    path = ed.cfg["history"]
    try:
        # The session directory is checked by the worker (safe_fs); a link here is never followed.
        if os.path.islink(path):
            raise OSError("repl_history is a symbolic link")
        if os.path.exists(path):
            readline.read_history_file(path)
        readline.set_history_length(HISTORY_MAX)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            os.fchmod(fd, 0o600)
        finally:
            os.close(fd)
        readline.write_history_file(path)  # trimmed to HISTORY_MAX, and created for appending
    except OSError:
        pass  # history is a convenience
    readline.set_completer(ed.complete)
    if "libedit" in (readline.__doc__ or ""):
        readline.parse_and_bind("bind ^I rl_complete")
    else:
        readline.parse_and_bind("tab: complete")
    readline.set_pre_input_hook(ed.pre_input)


def main():
    cfg = json.loads(os.environ.pop("PYTHOND_EDITOR"))
    try:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)  # Ctrl-C / SIGWINCH from this PTY now reach us
    except OSError:
        pass
    ed = Editor(cfg)
    signal.signal(signal.SIGINT, ed.on_sigint)
    signal.signal(signal.SIGUSR1, ed.on_usr1)
    for sig in (signal.SIGQUIT, signal.SIGTSTP, signal.SIGTTOU, signal.SIGTTIN):
        signal.signal(sig, signal.SIG_IGN)  # Ctrl-\ and Ctrl-Z must not stop the REPL
    setup_readline(ed)
    threading.Thread(target=ed.reader, name="editor-reader", daemon=True).start()
    os.write(1, ("Python %s on pythond session '%s': the namespace is shared with agents.\n"
                 "exit() ends the session (after asking); Ctrl-D detaches.\n"
                 % (sys.version.split()[0], cfg["name"])).encode())
    ed.loop()


if __name__ == "__main__":
    main()
