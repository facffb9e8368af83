"""The worker's life: set-up, the IO thread serving daemon connections (main_thread.py: the rest)."""
import builtins
import collections
import json
import os
import queue
import select
import selectors
import signal
import socket
import sys
import threading
import time

from . import capture, cells, execute, main_thread, ops, safe_fs, terminal
from .protocol import WORKER_PROTOCOL

# The original started every namespace with these imported, and agents written against it use
# them without importing (`os.getcwd()`, completing `os.path.`). Imported in set-up, before the
# worker says it is ready, so a warm spare pays for them ahead of `new`; a module an interpreter
# lacks (sqlite3 in some builds) is left out rather than failing the session.
PREIMPORTED = ("os", "sys", "json", "subprocess", "shutil", "hashlib", "time", "re", "glob", "sqlite3", "socket")


def preimport(ns):
    import importlib
    for name in PREIMPORTED:
        try:
            ns[name] = importlib.import_module(name)
        except Exception:
            pass


class Worker(main_thread.MainThread):
    def __init__(self, config):
        self.config = config
        self.name = config["name"]
        self.secret = config["secret"]
        self.ns = {"__name__": "__main__", "__builtins__": builtins, "__doc__": None}
        self.cells = cells.Cells()
        self.jobs = queue.SimpleQueue()  # work for the main thread from other threads (post)
        self.runs = collections.deque()  # run frames read from the run lanes, not yet started
        self.lanes = {}  # fd -> Conn: run lanes, read by the main thread
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        self.main_poll = select.poll()
        self.main_poll.register(self.wake_r, select.POLLIN)
        self.corked = None  # the connection of the running `run` cell, while its frames gather
        self.sync_cell = None
        self.history = cells.History(config["session_dir"])
        self.runtime_dir = os.path.dirname(config["record"])
        self.started = time.time()
        self.last_activity = self.started
        self.main_ident = threading.get_ident()
        self.in_fork_child = False  # set in any child forked from here (a cell's os.fork())
        os.register_at_fork(after_in_child=self._forked)
        self.conns = {}
        self.terminal_chunks = []
        self.terminal = None  # the session's PTY (terminal.py), set in setup

    # -- set-up ------------------------------------------------------------------------------
    def setup(self):
        try:
            os.setsid()
        except OSError:
            pass  # already a session leader (the daemon spawns us detached)
        if self.config.get("cwd"):
            try:
                os.chdir(self.config["cwd"])
            except OSError as e:
                sys.stderr.write("pythond: cannot enter %s: %s; staying in %s\n" % (self.config["cwd"], e, os.getcwd()))
        sock_path = self.config["sock"]
        try:
            os.unlink(sock_path)
        except OSError:
            pass
        old = os.umask(0o177)
        try:
            self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.listener.bind(sock_path)
            self.listener.listen(64)
        finally:
            os.umask(old)
        preimport(self.ns)
        self._write_record()
        # Ready: tell the daemon on our original stdout, then let go of its pipes.
        os.write(1, ("ready %d\n" % os.getpid()).encode())
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        self.capture = capture.Capture(self._terminal_sink)
        capture.install_thread_inheritance(execute.format_exception)
        sys.stdout = capture.Router("stdout", 1)
        sys.stderr = capture.Router("stderr", 2)
        capture.STREAMS = (sys.stdout, sys.stderr)
        self.no_input = capture.NoInput(self._input_message())
        sys.stdin = self.no_input
        self._install_input()
        signal.signal(signal.SIGINT, self._on_sigint)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        self.capture.on_tick = self._flush_corked
        self.capture.start()
        terminal.install(self)  # the PTY and its relay thread
        self.handlers = ops.handlers_for(self)
        threading.Thread(target=self._io_loop, name="pythond-io", daemon=True).start()
        if self.config.get("idle_timeout"):
            threading.Thread(target=self._reaper, name="pythond-reaper", daemon=True).start()
        if self.config.get("spare"):
            threading.Thread(target=self._spare_watch, name="pythond-spare", daemon=True).start()

    def _write_record(self):
        record = {
            "name": self.name,
            "pid": os.getpid(),
            "pgid": os.getpgid(0),
            "python": sys.executable,
            "python_version": "%d.%d.%d" % sys.version_info[:3],
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
            "sock": self.config["sock"],
            "secret": self.secret,
            "worker_protocol": WORKER_PROTOCOL,
            "binary_version": self.config.get("version", ""),
            "cwd": os.getcwd(),
        }
        if self.history.problem:
            record["history_problem"] = self.history.problem
        tmp = self.config["record"] + ".tmp"
        fd = safe_fs.create_new(tmp)  # a link planted at tmp is removed, never written through
        try:
            os.write(fd, json.dumps(record).encode())
        finally:
            os.close(fd)
        os.replace(tmp, self.config["record"])

    def _forked(self):
        self.in_fork_child = True

    def _input_message(self):
        return ("input() is not available in an agent cell (there is no terminal); pass the data "
                "in the code, or attach a terminal with: pysh attach %s" % self.name)

    # -- a warm spare (src/sessions/spare.ts) ----------------------------------------------------
    def claim(self, cfg):
        """A spare becomes the session `new` asked for: its name, socket path, record, history,
        directory and idle timeout. Until then it has no name, no record among the sessions and
        no history, and it ends when its daemon lets go of it (_drop) or dies (_spare_watch)."""
        old_sock, old_record = self.config["sock"], self.config["record"]
        self.config.update(cfg)
        self.config["spare"] = False
        self.name = cfg["name"]
        os.rename(old_sock, self.config["sock"])  # the listening socket keeps working under its new name
        if cfg.get("cwd"):
            try:
                os.chdir(cfg["cwd"])
            except OSError as e:
                sys.stderr.write("pythond: cannot enter %s: %s; staying in %s\n" % (cfg["cwd"], e, os.getcwd()))
        self.history = cells.History(cfg["session_dir"])
        self.runtime_dir = os.path.dirname(self.config["record"])
        self.started = self.last_activity = time.time()
        self.no_input._message = self._input_message()
        self._write_record()
        try:
            os.unlink(old_record)
        except OSError:
            pass
        if cfg.get("idle_timeout"):
            threading.Thread(target=self._reaper, name="pythond-reaper", daemon=True).start()

    def _spare_exit(self):
        for path in (self.config["record"], self.config["sock"]):
            try:
                os.unlink(path)
            except OSError:
                pass
        os._exit(0)

    def _spare_watch(self):
        """An unclaimed spare whose daemon died (we are reparented) has no reason to live. The
        daemon's pid comes in the config: by the time this runs the daemon may be gone already."""
        parent = self.config.get("daemon_pid") or os.getppid()
        while self.config.get("spare"):
            if os.getppid() != parent:
                self._spare_exit()
            time.sleep(0.25)

    def _install_input(self):
        def agent_input(prompt=""):
            raise RuntimeError(self._input_message())

        builtins.input = agent_input

    def _terminal_sink(self, data):
        # Output with no cell (a thread outliving nothing, atexit noise): shown on the PTY.
        if self.terminal is not None:
            return self.terminal.stray(data)
        self.terminal_chunks.append(data)
        if len(self.terminal_chunks) > 256:
            del self.terminal_chunks[:128]

    def _on_sigint(self, signum, frame):
        if self.sync_cell is not None:
            raise KeyboardInterrupt
        # no sync cell: nothing to interrupt on the main thread

    # -- IO thread ---------------------------------------------------------------------------
    def _io_loop(self):
        sel = selectors.DefaultSelector()
        sel.register(self.listener, selectors.EVENT_READ, None)
        while True:
            for key, _ in sel.select():
                if key.data is None:
                    try:
                        s, _ = self.listener.accept()
                    except OSError:
                        continue
                    conn = ops.Conn(s)
                    self.conns[s.fileno()] = conn
                    sel.register(s, selectors.EVENT_READ, conn)
                    continue
                conn = key.data
                frames = conn.receive()
                if frames is None:
                    sel.unregister(conn.sock)
                    self._drop(conn)
                    continue
                for i, (header, body) in enumerate(frames):
                    try:
                        ops.handle(self, conn, header, body)
                    except Exception as e:  # a bad request must never kill the IO thread
                        conn.send({"op": "reply", "rid": header.get("rid"), "ok": False,
                                   "code": "internal", "error": "worker: %s: %s" % (type(e).__name__, e)})
                    if conn.lane == "run":
                        # From now on the main thread reads this connection (frames that came
                        # with the hello go with it).
                        sel.unregister(conn.sock)
                        self.conns.pop(conn.sock.fileno(), None)
                        rest = frames[i + 1:]
                        self.post(lambda c=conn, r=rest: self._adopt_lane(c, r))
                        break

    def _reaper(self):
        """--idle-timeout: end the session once nobody has used it for that long (nothing running)."""
        limit = float(self.config["idle_timeout"])
        while True:
            time.sleep(min(max(limit / 4.0, 0.05), 30.0))
            idle = time.time() - self.last_activity
            if idle < limit or self.cells.running() or self.sync_cell is not None:
                continue
            reason = "ended after %.0f s idle (--idle-timeout %g)" % (idle, limit)
            self.history.note(reason)
            for conn in list(self.conns.values()):
                conn.send({"op": "bye", "reason": reason})
            try:
                os.unlink(self.config["record"])
                os.unlink(self.config["sock"])
            except OSError:
                pass
            os._exit(0)

    def _drop(self, conn):
        self.conns.pop(conn.sock.fileno(), None)
        conn.closed = True
        if conn.authed and self.config.get("spare"):
            self._spare_exit()  # the daemon let go of its spare
        for cell in self.cells.running():
            cell.detach(conn)
        if self.terminal is not None:
            self.terminal.drop_conn(conn)
        try:
            conn.sock.close()
        except OSError:
            pass

def main(config):
    worker = Worker(config)
    try:
        worker.setup()
    except Exception as e:
        sys.stderr.write("pythond worker failed to start: %s: %s\n" % (type(e).__name__, e))
        sys.stderr.flush()
        os._exit(70)
    worker.run_forever()
