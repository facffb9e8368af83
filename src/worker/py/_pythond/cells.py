"""Cell records: output kept for poll/wait, streaming to a subscriber with credit, history files.

A cell's output goes to its record (the last KEEP bytes) and, while a daemon connection subscribes,
to that connection as `out` frames. The daemon acknowledges what it has passed on; a cell that runs
WINDOW bytes ahead of the acknowledgements waits, so a slow client slows the cell instead of
filling memory. If the subscriber goes away (client or daemon gone), the cell runs on and its
output stays in the record for `poll`/`wait`.
"""
import collections
import operator
import os
import random
import threading
import time

from . import capture, safe_fs, wire

KEEP = 8 << 20
WINDOW = 1 << 20
CHUNK = 256 << 10
MAX_CELLS = int(os.environ.get("PYTHOND_MAX_CELLS", "1000"))
MIN_AGE = 300.0
MAX_AGE = MIN_AGE * 12  # finished cells older than an hour go, however few there are
MAX_KEPT_BYTES = 128 << 20
LOG_OUTPUT_MAX = 64 << 10
RECOUNT_EVERY = 256


_ids = random.Random(os.urandom(16))  # seeded once: an id costs no system call


def new_id():
    return "%012x" % _ids.getrandbits(48)


# One lock for the streaming state of every cell, with a condition for the rare waits (a cell
# ahead of its acks, a `wait` request). `with _LOCK` is C; notify only when someone waits.
_LOCK = threading.Lock()
_COND = threading.Condition(_LOCK)


def _wake_locked():
    if _COND._waiters:
        _COND.notify_all()


class Cell(object):
    # Defaults every cell starts with (a class attribute costs nothing per cell until changed).
    status = "running"
    ended = None
    error = ""
    exit_code = None
    kept = 0
    dropped = 0
    sub = None  # (conn, rid) of whoever streams the output
    unacked = 0
    thread_ident = None
    in_code = False  # a fire cell's thread runs the cell's code (ops._run_interruptible)
    int_asked = False
    counted = 0  # what Cells counts of this cell's output (set once it has ended)

    def __init__(self, kind, code, sub=None):
        """sub: (conn, rid) to stream the output to from the start (a `run`)."""
        if sub is not None:
            self.sub = sub
        self.id = new_id()
        self.kind = kind
        self.code = code
        self.started = time.time()
        self.extra = {}
        self.chunks = collections.deque()
        self.out = capture.Out(self._sink)
        if kind == "fire":
            self.int_lock = threading.Lock()

    # -- output -----------------------------------------------------------------------------
    def _sink(self, data):
        # One huge write (print('x' * 10**8)) must not become one huge frame: the window is
        # checked per chunk, so memory stays bounded in the daemon and in this record. Chunks
        # are sent as views of the write; only those within its last KEEP bytes are copied to
        # be kept (the rest would be dropped from the record at once).
        n = len(data)
        if n > CHUNK:
            view = memoryview(data)
            keep_from = n - KEEP
            for off in range(0, n, CHUNK):
                part = view[off:off + CHUNK]
                self._sink_one(part, bytes(part) if off + CHUNK > keep_from else None)
        elif data:
            self._sink_one(data, data)

    def _sink_one(self, data, kept):
        if kept is None:
            self.dropped += len(data)
        else:
            self.chunks.append(kept)
            self.kept += len(kept)
            while self.kept > KEEP and len(self.chunks) > 1:
                old = self.chunks.popleft()
                self.kept -= len(old)
                self.dropped += len(old)
        with _LOCK:
            while self.sub is not None and self.unacked > WINDOW:
                self.sub[0].flush()  # a corked run lane: what waits for an ack must be sent
                _COND.wait(1.0)
            sub = self.sub
            if sub is not None:
                self.unacked += len(data)
        if sub is not None and not sub[0].send(wire.cell_header("out", sub[1], self.id), data):
            self.detach(sub[0])

    def output_bytes(self):
        data = b"".join(self.chunks)
        if self.dropped:
            data = ("[... %d bytes of earlier output dropped ...]\n" % self.dropped).encode() + data
        return data

    def output_text(self):
        return self.output_bytes().decode("utf-8", "replace").rstrip("\n")

    def ack(self, n):
        with _LOCK:
            self.unacked = max(0, self.unacked - n)
            _wake_locked()

    def detach(self, conn):
        with _LOCK:
            if self.sub is not None and self.sub[0] is conn:
                self.sub = None
                _wake_locked()

    # -- result ------------------------------------------------------------------------------
    def finish(self, result, history=None):
        """Ends the cell. History is written before the status changes, so whoever sees the cell
        finished (a reply, a poll) also finds it in history.py / session.log. Returns (conn, rid)
        of whoever streamed its output, if anyone did: they get the end (ops.send_end)."""
        self.out.flush()
        self.ended = time.time()
        self.error = result.error
        self.exit_code = result.exit_code
        if history is not None:
            history.record(self, result.ok)
        with _LOCK:
            self.status = "done" if result.ok else "error"
            sub, self.sub = self.sub, None
            _wake_locked()
        return sub

    def wait_done(self, timeout=None):
        """True once the cell has ended (False if timeout seconds passed first)."""
        with _LOCK:
            return _COND.wait_for(lambda: self.status != "running", timeout)

    def poll_json(self):
        d = {"cell_id": self.id, "status": self.status, "output": self.output_text()}
        if self.status == "error":
            d["error"] = True
            text = d["output"]
            d["output"] = (text + "\n" + self.error) if text else self.error
        d.update(self.extra)
        return d


class Cells(object):
    """The session's cells: running ones and finished ones kept for poll (bounded).

    Finished cells are evicted in the order they ended, not the order they started: a long fire
    cell that ends after a thousand quick runs is the newest result, and must still be there for
    the `poll` that comes for it."""

    def __init__(self):
        self.by_id = {}  # every kept cell, in the order they started
        self.finished = {}  # the finished ones, in the order they ended
        self.lock = threading.Lock()
        self.count = 0
        self.kept_bytes = 0  # output kept by ended cells (as counted when they were settled)
        self._unsettled = []  # cells not counted yet: running when last looked at

    def add(self, cell):
        self.insert(cell)
        self.tidy()

    def insert(self, cell):
        """A new cell, without the bookkeeping of the others (tidy), which a `run` does after its
        reply is out."""
        with self.lock:
            self.by_id[cell.id] = cell
            self.count += 1
            self._unsettled.append(cell)

    def tidy(self):
        """Counts the output of cells that ended, evicts those past the limits."""
        with self.lock:
            self._settle_locked()
            self._evict_locked()

    def _settle_locked(self):
        """Moves the cells that ended since the last look to `finished` and counts their output:
        O(cells still running). A thread of an ended cell may still write into it; a full recount
        every RECOUNT_EVERY cells corrects that drift."""
        still = []
        done = []
        for c in self._unsettled:
            if c.status == "running":
                still.append(c)
            else:
                done.append(c)
        self._unsettled = still
        if len(done) > 1:
            done.sort(key=operator.attrgetter("ended"))
        for c in done:
            c.counted = c.kept
            self.kept_bytes += c.counted
            self.finished[c.id] = c
        if self.count % RECOUNT_EVERY == 0:
            for c in self.finished.values():
                c.counted = c.kept
            self.kept_bytes = sum(c.counted for c in self.finished.values())

    def get(self, cell_id):
        return self.by_id.get(cell_id)

    def latest(self, kinds=None):
        """The cell started last, of one of `kinds` if given (poll without an id: the latest
        fire or fork cell, as the original kept no run cells). reversed() of a dict view: 3.8+."""
        with self.lock:
            for c in reversed(self.by_id.values()):
                if kinds is None or c.kind in kinds:
                    return c
            return None

    def running(self):
        with self.lock:
            return [c for c in self.by_id.values() if c.status == "running"]

    def _evict_locked(self):
        """Finished cells, those that ended first going first; running ones never: O(cells
        evicted). Over MAX_CELLS, it goes down to MAX_CELLS - MAX_CELLS/16 at once, so that a
        session at its cap (every busy session, after 1,000 cells) does this once in ~60 cells,
        not at every cell."""
        if not self.finished:
            return
        if len(self.by_id) <= MAX_CELLS and self.kept_bytes <= MAX_KEPT_BYTES:
            if time.time() - next(iter(self.finished.values())).ended <= MAX_AGE:
                return  # the usual case: nothing to evict, decided without a loop
        keep = MAX_CELLS - (MAX_CELLS >> 4) if len(self.by_id) > MAX_CELLS else MAX_CELLS
        now = time.time()
        victims = []
        for c in self.finished.values():
            too_many = len(self.by_id) - len(victims) > keep
            too_big = self.kept_bytes > MAX_KEPT_BYTES
            old = now - c.ended > MAX_AGE
            if not (too_many or too_big or old):
                break
            victims.append(c)
            self.kept_bytes -= c.counted
        for c in victims:
            del self.by_id[c.id]
            del self.finished[c.id]


class History(object):
    """~/.pythond/sessions/<name>/history.py (successful cells) and session.log (every cell).

    Written with one os.write per file and cell (O_APPEND), before the cell is seen finished."""

    def __init__(self, directory):
        self.dir = directory
        self.lock = threading.Lock()
        self.hist = None
        self.log = None
        self._ts = (None, "")
        self.problem = None
        if directory is None:
            return  # a warm spare: no session yet, so no history
        try:
            # ~/.pythond, ~/.pythond/sessions and the session's own: each ours and closed to others.
            parent = os.path.dirname(directory)
            for d in (os.path.dirname(parent), parent, directory):
                safe_fs.private_dir(d)
            self.hist = safe_fs.open_append(os.path.join(directory, "history.py"))
            self.log = safe_fs.open_append(os.path.join(directory, "session.log"))
        except (OSError, safe_fs.Unsafe) as e:
            # History is a convenience: a read-only home must not stop the session, but the user
            # must learn that nothing is kept (the record, `status` and the daemon's log say so).
            for fd in (self.hist, self.log):
                if fd is not None:
                    os.close(fd)
            self.hist = self.log = None
            self.problem = "history disabled: %s" % (e if isinstance(e, safe_fs.Unsafe) else
                                                     "%s: %s" % (getattr(e, "filename", None) or directory, e.strerror or e))

    def _stamp(self, t):
        sec = int(t)
        if self._ts[0] != sec:
            self._ts = (sec, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(sec)))
        return self._ts[1]

    @staticmethod
    def _write(fd, text):
        if fd is not None:
            os.write(fd, text.encode("utf-8", "backslashreplace"))

    def note(self, text):
        """A line in session.log about the session itself (not a cell)."""
        with self.lock:
            try:
                self._write(self.log, "# [%s] %s\n" % (self._stamp(time.time()), text))
            except OSError:
                pass

    def record(self, cell, ok):
        code = cell.code.rstrip("\n")
        with self.lock:
            sec = int(cell.started)
            ts = self._ts[1] if self._ts[0] == sec else self._stamp(sec)
            try:
                if ok and self.hist is not None:
                    os.write(self.hist, ("\n# [%s]\n%s\n" % (ts, code)).encode("utf-8", "backslashreplace"))
                if self.log is not None:
                    out = cell.output_text()
                    if not ok:
                        out = (out + "\n" + cell.error) if out else cell.error
                    if len(out) > LOG_OUTPUT_MAX:
                        out = out[:LOG_OUTPUT_MAX] + "\n... (%d more characters not logged)" % (len(out) - LOG_OUTPUT_MAX)
                    head = "# [%s] %s\n%s\n" % (ts, "OK" if ok else "ERROR", code)
                    if out:
                        head += "# > " + out.replace("\n", "\n# > ") + "\n"
                    os.write(self.log, head.encode("utf-8", "backslashreplace"))
            except OSError:
                pass
