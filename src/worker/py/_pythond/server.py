"""The worker's life: set-up, the IO thread serving daemon connections, the main-thread queue."""
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

from . import capture, cells, execute, human, ops, terminal, wire

WORKER_PROTOCOL = 1


class Worker(object):
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
        self._write_record()
        # Ready: tell the daemon on our original stdout, then let go of its pipes.
        os.write(1, ("ready %d\n" % os.getpid()).encode())
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        self.capture = capture.Capture(self._terminal_sink)
        capture.install_thread_inheritance()
        sys.stdout = capture.Router("stdout", 1)
        sys.stderr = capture.Router("stderr", 2)
        self.no_input = capture.NoInput(self._input_message())
        sys.stdin = self.no_input
        self._install_input()
        signal.signal(signal.SIGINT, self._on_sigint)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        self.capture.on_tick = self._flush_corked
        self.capture.start()
        terminal.install(self, ops.HANDLERS)  # the PTY, its relay thread, the attach ops
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
        tmp = self.config["record"] + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(record, f)
        os.replace(tmp, self.config["record"])

    def _input_message(self):
        return ("input() is not available in an agent cell (there is no terminal); pass the data "
                "in the code, or attach a terminal with: pysh attach %s" % self.name)

    # -- a warm spare (src/daemon/spare.ts) ----------------------------------------------------
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
                try:
                    data = conn.sock.recv(1 << 20)
                except OSError:
                    data = b""
                frames = []
                if data:
                    try:
                        frames = conn.feed(data)
                    except ValueError:
                        data = b""
                if not data:
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

    # -- main thread -------------------------------------------------------------------------
    def post(self, job):
        """Queues job for the main thread (human blocks, run lanes, runs on the IO connection)."""
        self.jobs.put(job)
        try:
            os.write(self.wake_w, b"x")
        except OSError:
            pass  # the pipe is full: the main thread is awake anyway

    def run_forever(self):
        """The main thread waits on its run lanes and its job queue together, and runs a `run`
        frame where it reads it: no hand-off between threads for a cell, so a quick cell costs
        one wake-up of this process. While a cell runs, the IO thread serves everything else
        (int, acks, poll, fire, attach); further runs wait in the socket, in order."""
        while True:
            try:
                self._serve_main()
            except KeyboardInterrupt:
                continue  # a SIGINT that arrived between cells

    def _serve_main(self):
        poll = self.main_poll.poll
        while True:
            while True:
                try:
                    job = self.jobs.get_nowait()
                except queue.Empty:
                    break
                job()
            if self.runs:
                conn, h, body = self.runs.popleft()
                self.run_frame(conn, h.get("rid"), h, body)
                continue
            for fd, _ in poll():
                if fd == self.wake_r:
                    try:
                        os.read(self.wake_r, 4096)
                    except OSError:
                        pass
                    continue
                conn = self.lanes.get(fd)
                if conn is not None:
                    self._read_lane(conn)

    def _adopt_lane(self, conn, frames):
        self.lanes[conn.sock.fileno()] = conn
        self.main_poll.register(conn.sock.fileno(), select.POLLIN)
        self._queue_runs(conn, frames)

    def _read_lane(self, conn):
        try:
            data = conn.sock.recv(1 << 20)
        except OSError:
            data = b""
        frames = None
        if data:
            try:
                frames = conn.feed(data)
            except ValueError:
                data = b""
        if not data:
            fd = conn.sock.fileno()
            self.lanes.pop(fd, None)
            try:
                self.main_poll.unregister(fd)
            except (KeyError, ValueError):
                pass
            self._drop(conn)
            return
        self._queue_runs(conn, frames)

    def _queue_runs(self, conn, frames):
        for h, body in frames:
            if h.get("op") == "run":
                self.runs.append((conn, h, body))
            else:
                conn.send({"op": "reply", "rid": h.get("rid"), "ok": False, "code": "internal",
                           "error": "worker: only run goes on the run lane (got %r)" % h.get("op")})

    def run_frame(self, conn, rid, h, body):
        """One `run` request, on the main thread: start, output and end go out corked (wire.py)."""
        self.last_activity = time.time()
        cell = cells.Cell("run", body.decode("utf-8", "replace"))
        self.cells.add(cell)
        cell.subscribe(conn, rid)
        conn.cork()
        self.corked = conn
        try:
            conn.send(wire.cell_header("start", rid, cell.id))
            self.run_sync(cell, h.get("timeout"))
        finally:
            self.corked = None
            conn.uncork()

    def _flush_corked(self):
        """Capture thread, every tick: what a running cell has sent so far goes out."""
        conn = self.corked
        if conn is not None and conn.wbuf:
            conn.flush()

    def run_sync(self, cell, timeout):
        """Runs on the main thread: one sync cell, output owned by it (fds included)."""
        show = human.agent_begin(self, cell)  # `[ai] run: ...` on the attached terminal
        try:
            result = self._execute_sync(cell, timeout)
        except KeyboardInterrupt:  # a second SIGINT landed in our own clean-up, before sync_cell was cleared
            result = execute.Result()
            result.ok = False
            result.error = "KeyboardInterrupt"
        if cell.extra.get("timed_out"):
            result.ok = False
            result.error = (result.error + "\n" if result.error else "") + \
                "pythond: cell interrupted after --timeout %gs; the session is still alive" % timeout
        cell.finish(result, self.history)
        ops.send_end(cell)
        if show is not None:
            show.end(cell)

    def _execute_sync(self, cell, timeout):
        timer = None
        if timeout:
            timer = threading.Timer(timeout, self._timeout, (cell,))
            timer.daemon = True
            timer.start()
        capture.bind_thread(cell.out)
        self.capture.set_owner(cell.out)
        try:
            try:
                # From here SIGINT raises KeyboardInterrupt (_on_sigint), so inside the try: one
                # landing before it would escape, and the cell would never end.
                self.sync_cell = cell
                result = execute.execute(cell.code, self.ns, "<cell-%s>" % cell.id)
            except KeyboardInterrupt:  # landed between our own statements
                result = execute.Result()
                result.ok = False
                result.error = "KeyboardInterrupt"
        finally:
            self.sync_cell = None
            if timer is not None:
                timer.cancel()
            try:
                capture.release_owner(cell.out)
            finally:
                capture.bind_thread(None)
        return result

    def _timeout(self, cell):
        if self.sync_cell is cell:
            cell.extra["timed_out"] = True
            os.kill(os.getpid(), signal.SIGINT)


def main(config):
    worker = Worker(config)
    try:
        worker.setup()
    except Exception as e:
        sys.stderr.write("pythond worker failed to start: %s: %s\n" % (type(e).__name__, e))
        sys.stderr.flush()
        os._exit(70)
    worker.run_forever()
