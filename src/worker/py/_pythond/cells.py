"""Cell records: output kept for poll/wait, streaming to a subscriber with credit, history files.

A cell's output goes to its record (the last KEEP bytes) and, while a daemon connection subscribes,
to that connection as `out` frames. The daemon acknowledges what it has passed on; a cell that runs
WINDOW bytes ahead of the acknowledgements waits, so a slow client slows the cell instead of
filling memory. If the subscriber goes away (client or daemon gone), the cell runs on and its
output stays in the record for `poll`/`wait`.
"""
import binascii
import collections
import os
import threading
import time

from . import capture

KEEP = 8 << 20
WINDOW = 1 << 20
CHUNK = 256 << 10
MAX_CELLS = int(os.environ.get("PYTHOND_MAX_CELLS", "1000"))
MIN_AGE = 300.0
MAX_KEPT_BYTES = 128 << 20
LOG_OUTPUT_MAX = 64 << 10
SCAN_EVERY = 16
SCAN_BYTES = 1 << 20


def new_id():
    return binascii.hexlify(os.urandom(6)).decode()


class Cell(object):
    def __init__(self, kind, code):
        self.id = new_id()
        self.kind = kind
        self.code = code
        self.status = "running"
        self.started = time.time()
        self.ended = None
        self.error = ""
        self.exit_code = None
        self.extra = {}
        self.chunks = collections.deque()
        self.kept = 0
        self.dropped = 0
        self.sub = None  # (conn, rid)
        self.unacked = 0
        self.cond = threading.Condition()
        self.thread_ident = None
        self.done_event = threading.Event()
        self.out = capture.Out(self._sink)

    # -- output -----------------------------------------------------------------------------
    def _sink(self, data):
        # One huge write (print('x' * 10**8)) must not become one huge frame: the window is
        # checked per chunk, so memory stays bounded in the daemon and in this record.
        if len(data) > CHUNK:
            view = memoryview(data)
            for off in range(0, len(data), CHUNK):
                self._sink_one(bytes(view[off:off + CHUNK]))
        elif data:
            self._sink_one(data)

    def _sink_one(self, data):
        self.chunks.append(data)
        self.kept += len(data)
        while self.kept > KEEP and len(self.chunks) > 1:
            old = self.chunks.popleft()
            self.kept -= len(old)
            self.dropped += len(old)
        with self.cond:
            while self.sub is not None and self.unacked > WINDOW:
                self.cond.wait(1.0)
            sub = self.sub
            if sub is not None:
                self.unacked += len(data)
        if sub is not None and not sub[0].send({"op": "out", "rid": sub[1], "cell": self.id}, data):
            self.detach(sub[0])

    def output_bytes(self):
        data = b"".join(self.chunks)
        if self.dropped:
            data = ("[... %d bytes of earlier output dropped ...]\n" % self.dropped).encode() + data
        return data

    def output_text(self):
        return self.output_bytes().decode("utf-8", "replace").rstrip("\n")

    def subscribe(self, conn, rid):
        with self.cond:
            self.sub = (conn, rid)
            self.unacked = 0

    def ack(self, n):
        with self.cond:
            self.unacked = max(0, self.unacked - n)
            self.cond.notify_all()

    def detach(self, conn):
        with self.cond:
            if self.sub is not None and self.sub[0] is conn:
                self.sub = None
                self.cond.notify_all()

    # -- result ------------------------------------------------------------------------------
    def finish(self, result, history=None):
        """Ends the cell. History is written before the status changes, so whoever sees the cell
        finished (a reply, a poll) also finds it in history.py / session.log."""
        self.out.flush()
        self.ended = time.time()
        self.error = result.error
        self.exit_code = result.exit_code
        if history is not None:
            history.record(self, result.ok)
        self.status = "done" if result.ok else "error"
        self.done_event.set()

    def poll_json(self):
        d = {"cell_id": self.id, "status": self.status, "output": self.output_text()}
        if self.status == "error":
            d["error"] = True
            text = d["output"]
            d["output"] = (text + "\n" + self.error) if text else self.error
        d.update(self.extra)
        return d


class Cells(object):
    """The session's cells: running ones and finished ones kept for poll (bounded)."""

    def __init__(self):
        self.by_id = collections.OrderedDict()
        self.lock = threading.Lock()
        self.count = 0
        self._adds = 0
        self._prev = None

    def add(self, cell):
        with self.lock:
            self.by_id[cell.id] = cell
            self.count += 1
            # Summing the sizes of all kept cells is O(cells) (~200 us a cell at 1000 cells): do
            # it every SCAN_EVERY adds, or at once after a cell that kept over SCAN_BYTES. The
            # count and age rules apply on every add.
            prev, self._prev = self._prev, cell
            self._adds += 1
            self._evict_locked(self._adds % SCAN_EVERY == 0 or (prev is not None and prev.kept > SCAN_BYTES))

    def get(self, cell_id):
        return self.by_id.get(cell_id)

    def latest(self):
        with self.lock:
            return next(reversed(self.by_id.values()), None) if self.by_id else None

    def running(self):
        with self.lock:
            return [c for c in self.by_id.values() if c.status == "running"]

    def _evict_locked(self, full=True):
        """Oldest finished cells first, up to the first one that may stay: O(cells evicted)."""
        now = time.time()
        kept_bytes = sum(c.kept for c in self.by_id.values() if c.status != "running") if full else 0
        victims = []
        for c in self.by_id.values():
            if c.status == "running":
                continue
            too_many = len(self.by_id) - len(victims) > MAX_CELLS
            too_big = kept_bytes > MAX_KEPT_BYTES
            old = c.ended is not None and now - c.ended > MIN_AGE * 12
            if not (too_many or too_big or old):
                break
            victims.append(c)
            kept_bytes -= c.kept
        for c in victims:
            del self.by_id[c.id]


class History(object):
    """~/.pythond/sessions/<name>/history.py (successful cells) and session.log (every cell)."""

    def __init__(self, directory):
        self.dir = directory
        self.lock = threading.Lock()
        self.hist = None
        self.log = None
        if directory is None:
            return  # a warm spare: no session yet, so no history
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            os.chmod(directory, 0o700)
            self.hist = open(os.path.join(directory, "history.py"), "a", encoding="utf-8")
            self.log = open(os.path.join(directory, "session.log"), "a", encoding="utf-8")
            for f in (self.hist, self.log):
                os.chmod(f.name, 0o600)
        except OSError:
            pass  # history is a convenience; a read-only home must not stop the session

    def note(self, text):
        """A line in session.log about the session itself (not a cell)."""
        with self.lock:
            try:
                if self.log is not None:
                    self.log.write("# [%s] %s\n" % (time.strftime("%Y-%m-%d %H:%M:%S"), text))
                    self.log.flush()
            except (OSError, ValueError):
                pass

    def record(self, cell, ok):
        ts = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(cell.started))
        code = cell.code.rstrip("\n")
        with self.lock:
            try:
                if ok and self.hist is not None:
                    self.hist.write("\n# [%s]\n%s\n" % (ts, code))
                    self.hist.flush()
                if self.log is not None:
                    out = cell.output_text()
                    if not ok:
                        out = (out + "\n" + cell.error) if out else cell.error
                    if len(out) > LOG_OUTPUT_MAX:
                        out = out[:LOG_OUTPUT_MAX] + "\n... (%d more characters not logged)" % (len(out) - LOG_OUTPUT_MAX)
                    lines = ["# [%s] %s" % (ts, "OK" if ok else "ERROR"), code]
                    if out:
                        lines.extend("# > " + line for line in out.split("\n"))
                    self.log.write("\n".join(lines) + "\n")
                    self.log.flush()
            except (OSError, ValueError):
                pass
