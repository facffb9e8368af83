"""The worker's main thread: it runs every sync cell (DESIGN decision 3).

It waits on its run lanes (daemon connections that carry only `run`, read here) and on its job
queue (human blocks, lanes to adopt, runs that came on an IO-thread connection) together, and runs
a `run` frame where it reads it: no hand-off between threads for a cell, so a quick cell costs
one wake-up of this process. While a cell runs, the IO thread serves everything else (int, acks,
poll, fire, attach); further runs wait in the socket, in order.
"""
import os
import queue
import select
import signal
import threading
import time

from . import capture, cells, execute, human, ops, wire


class MainThread(object):
    """Mixed into server.Worker: the main-thread half of the worker."""

    def post(self, job):
        """Queues job for the main thread (human blocks, run lanes, runs on the IO connection)."""
        self.jobs.put(job)
        wire.poke(self.wake_w)

    def run_forever(self):
        while True:
            try:
                self._serve_main()
            except KeyboardInterrupt:
                continue  # a SIGINT that arrived between cells

    def _serve_main(self):
        poll = self.main_poll.poll
        jobs = self.jobs
        while True:
            while not jobs.empty():  # (get_nowait would raise Empty at every turn)
                try:
                    job = jobs.get_nowait()
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
        frames = conn.receive()
        if frames is None:
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
        """One `run` request, on the main thread. Start, output and end go out corked (wire.py):
        for a quick cell, one write. This is the hot path of the whole product (a cell like
        `x + 1` spends most of its time here): keep it flat, one call per step."""
        cell = cells.Cell("run", body.decode("utf-8", "replace"), (conn, rid))
        self.last_activity = cell.started
        self.cells.insert(cell)
        conn.cork(wire.cell_header("start", rid, cell.id))
        self.corked = conn
        show = None
        try:
            show = human.agent_begin(self, cell)  # `[ai] run: ...` on the attached terminal
            timeout = h.get("timeout")
            try:
                result = self._execute_sync(cell, timeout)
            except KeyboardInterrupt:  # a second SIGINT landed in our own clean-up, before sync_cell was cleared
                result = execute.Result()
                result.ok = False
                result.error = "KeyboardInterrupt"
            if self.in_fork_child:
                # The cell called os.fork() and this is the child, back from the cell: it must not
                # answer for the cell, nor read the daemon's sockets it shares with us.
                os._exit(0)
            if cell.extra and cell.extra.get("timed_out"):
                result.ok = False
                result.error = (result.error + "\n" if result.error else "") + \
                    "pythond: cell interrupted after --timeout %gs; the session is still alive" % timeout
            ops.send_end(cell, cell.finish(result, self.history))
        finally:
            self.corked = None
            conn.uncork()
            # The reply is out: what follows waits for nobody (the terminal's record of the cell,
            # the bookkeeping of the session's other cells).
            human.agent_end(cell, show)
            self.cells.tidy()

    def _flush_corked(self):
        """Capture thread, every tick: what a running cell has sent so far goes out; an agent
        cell a client attached to goes live if the IO thread could not do it (human.py)."""
        conn = self.corked
        if conn is not None and conn.wbuf:
            conn.flush()
        term = self.terminal
        if term is not None and term.quiet_cell is not None and term.viewers:
            human.agent_attached(term, wait=True)

    def _execute_sync(self, cell, timeout):
        """The cell's code on this thread, which owns its output (fds included) meanwhile."""
        timer = None
        if timeout:
            timer = threading.Timer(timeout, self._timeout, (cell,))
            timer.daemon = True
            timer.start()
        out = cell.out
        self.capture.own(out)
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
            capture.release_owner(out)
        return result

    def _timeout(self, cell):
        if self.sync_cell is cell:
            cell.extra["timed_out"] = True
            os.kill(os.getpid(), signal.SIGINT)
