"""The session's terminal (DESIGN decision 2): a PTY owned by the worker, so it outlives the daemon.

  - The PTY (os.openpty): the worker keeps both ends for its whole life. The relay thread
    ("pythond-pty") is the only reader and writer of the master: output goes into a 64 KiB
    scrollback ring and, as `tout` frames, to every daemon connection with an attached client;
    typed bytes (`tin` frames, queued by the IO thread) are written when the master takes them.
  - The editor process (editor.py, managed by editor_link.py, started at the first attach):
    readline binds to C fds 0/1, and the worker's fd 1 is the capture pipe, so the human's line
    editing runs in a small child Python whose controlling terminal and fds 0/1/2 are the PTY
    slave. It sends complete blocks over a socketpair; they run as jobs on the main-thread queue,
    like agent `run` cells (human.py).
  - Agent cells and stray output are shown on the PTY too (human.py), after asking the editor to
    move its prompt out of the way (pause/resume), so the screen stays readable.

Daemon ops (src/sessions/attach.ts is the other side):
  attach {rid, aid, rows?, cols?} -> reply, then `tout {aid}` + the ring (replay, that client only),
  then live `tout` + bytes for every attachment of that connection;
  detach {aid}; tin {aid} + bytes; resize {rows, cols}; worker -> daemon: tdetach {aid} (Ctrl-D).

Flow control: the relay thread never waits for a client. The daemon reads the worker socket all the
time and drops output for a client that falls behind. Typed input is queued up to INPUT_MAX bytes
while the PTY does not take it (a block running that does not read); beyond that it is dropped.
"""
import collections
import os
import select
import struct
import sys
import threading
import time

try:
    import fcntl
    import termios
except ImportError:  # Windows: no PTY here (ConPTY would be needed); the worker runs without attach
    fcntl = termios = None

from . import editor_link, human, wire

RING_MAX = 64 << 10
INPUT_MAX = 64 << 10
IUTF8 = getattr(termios, "IUTF8", 0o40000)  # Python < 3.12 lacks the name; Linux's value


def set_size(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class Terminal(object):
    def __init__(self, worker):
        self.w = worker
        self.master, self.slave = os.openpty()
        set_size(self.master, 24, 80)
        attrs = termios.tcgetattr(self.slave)
        attrs[0] |= IUTF8  # canonical-mode backspace over UTF-8 (input() in a human block)
        termios.tcsetattr(self.slave, termios.TCSANOW, attrs)
        os.set_blocking(self.master, False)
        self.lock = threading.RLock()  # ring, viewers, input queue
        self.ring = bytearray()
        self.later = collections.deque()  # shown at the next attach (stray)
        self.later_size = 0
        self.quiet_cell = None  # the agent run cell running unwatched (human.agent_begin)
        self.viewers = {}  # daemon Conn -> set of attachment ids
        self.inq = bytearray()
        self.dropped_input = 0
        self.last_input = None  # (conn, aid) that typed last: Ctrl-D detaches that one
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        self.editors = editor_link.Editors(self)

    def start(self):
        threading.Thread(target=self._loop, name="pythond-pty", daemon=True).start()

    # -- writing to the screen (any thread) --------------------------------------------------
    def write(self, data):
        """Output side of the slave: the relay thread drains the master, so this never waits long."""
        if isinstance(data, str):
            data = data.encode("utf-8", "backslashreplace")
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.slave, view)
            except BlockingIOError:
                select.select([], [self.slave], [], 0.1)
                continue
            view = view[n:]

    def read_line(self, prompt=""):
        """input() of a human block: the PTY is in canonical mode then (the editor waits)."""
        if prompt:
            self.write(prompt)
        data = os.read(self.slave, 65536)
        if not data:
            raise EOFError
        return data.decode("utf-8", "replace").rstrip("\n")

    def viewer_count(self):
        with self.lock:
            return sum(len(a) for a in self.viewers.values())

    def stray(self, data):
        """Output of no cell, or an ended agent cell (human.QuietRecord, rendered when shown). With
        nobody attached it waits in `later` (about its last RING_MAX bytes) and reaches the PTY at
        the next attach, before the scrollback is replayed: a session nobody watches spends no
        PTY round trip per cell."""
        with self.lock:
            if not self.viewers:
                self.later.append(data)
                self.later_size += len(data) if type(data) is bytes else min(data.size, RING_MAX)
                while self.later_size > RING_MAX and len(self.later) > 1:
                    old = self.later.popleft()
                    self.later_size -= len(old) if type(old) is bytes else min(old.size, RING_MAX)
                return
        self._show(data if type(data) is bytes else data.render())

    def _show(self, data):
        """Through the editor, which clears its prompt line first; or straight onto the PTY."""
        if not self.editors.send({"t": "print", "data": data.decode("latin-1")}):
            self.write(data)

    # -- the editor (editor_link.py) ----------------------------------------------------------
    def pause_editor(self):
        self.editors.pause()

    def resume_editor(self):
        self.editors.send({"t": "resume"})

    def block_done(self):
        self.editors.send({"t": "done"})

    # -- daemon side (IO thread) -------------------------------------------------------------
    def attach(self, conn, rid, aid, rows, cols):
        self.editors.ensure()
        if rows and cols:
            set_size(self.master, rows, cols)
        with self.lock:
            later = b"".join(d if type(d) is bytes else d.render() for d in self.later)[-RING_MAX:]
            self.later.clear()
            self.later_size = 0
        if later:
            # Written before this client is registered: the relay puts it in the ring (replayed
            # below) or, if it reads it after, sends it live; either way once, and in order.
            self._show(later)
        with self.lock:
            # Reply, replay and registration under one lock: live output is either in the replay
            # or sent after it, never both and never lost.
            conn.send({"op": "reply", "rid": rid, "ok": True, "data": "OK attached"})
            conn.send({"op": "tout", "aid": aid}, self._replay())
            self.viewers.setdefault(conn, set()).add(aid)
        human.agent_attached(self)  # an agent cell running unwatched goes live

    def _replay(self):
        data = bytes(self.ring)
        if len(data) >= RING_MAX:
            nl = data.find(b"\n", 0, 4096)  # start at a line, not inside an escape sequence
            if nl >= 0:
                data = data[nl + 1:]
        return data

    def detach(self, conn, aid):
        with self.lock:
            aids = self.viewers.get(conn)
            if aids is not None:
                aids.discard(aid)
                if not aids:
                    del self.viewers[conn]

    def drop_conn(self, conn):
        with self.lock:
            self.viewers.pop(conn, None)
            if self.last_input is not None and self.last_input[0] is conn:
                self.last_input = None

    def input(self, conn, aid, data):
        with self.lock:
            room = max(INPUT_MAX - len(self.inq), 0)
            if len(data) > room:
                self.dropped_input += len(data) - room
                data = data[:room]
            self.inq += data
            self.last_input = (conn, aid)
        self.poke()

    def resize(self, rows, cols):
        set_size(self.master, rows, cols)  # the kernel sends SIGWINCH to the editor

    def detach_last(self):
        """Ctrl-D at the prompt: detaches the client that typed last."""
        with self.lock:
            last = self.last_input
            if last is None or last[1] not in self.viewers.get(last[0], ()):
                return
            self.detach(*last)
            last[0].send({"op": "tdetach", "aid": last[1]})

    # -- relay thread ------------------------------------------------------------------------
    def poke(self):
        wire.poke(self.wake_w)

    def _loop(self):
        while True:
            ed = self.editors.link
            rlist = [self.master, self.wake_r] + ([ed.sock] if ed is not None else [])
            try:
                r, w, _ = select.select(rlist, [self.master] if self.inq else [], [])
            except (OSError, ValueError):
                continue  # the editor's socket closed under us: build the lists again
            if self.wake_r in r:
                try:
                    os.read(self.wake_r, 4096)
                except OSError:
                    pass
            if self.master in r:
                self._read_master()
            if w:
                self._write_master()
            if ed is not None and ed.sock in r:
                self.editors.read(ed)

    def _read_master(self):
        # A PTY hands out at most a few KiB per read: gather what is there (up to 64 KiB) into one
        # frame, which roughly triples throughput for a block that prints a lot.
        parts, size = [], 0
        while size < 65536:
            try:
                chunk = os.read(self.master, 65536 - size)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                time.sleep(0.05)  # EIO would mean no slave open; we keep one, so only transiently
                break
            if not chunk:
                break
            parts.append(chunk)
            size += len(chunk)
        if not parts:
            return
        data = b"".join(parts)
        with self.lock:
            self.ring += data
            if len(self.ring) > RING_MAX:
                del self.ring[:len(self.ring) - RING_MAX]
            for conn in list(self.viewers):
                if not conn.send({"op": "tout"}, data):
                    self.viewers.pop(conn, None)

    def _write_master(self):
        with self.lock:
            data = bytes(self.inq)
        try:
            n = os.write(self.master, data)
        except BlockingIOError:
            n = 0
        except OSError:
            n = len(data)
        with self.lock:
            del self.inq[:n]


# -- ops from the daemon (served when the session has a terminal: ops.handlers_for) -------------
def _int_or_none(v):
    try:
        n = int(v)
    except (TypeError, ValueError):
        return None
    return n if 0 < n < 10000 else None


def _op_attach(w, conn, rid, h, body):
    w.terminal.attach(conn, rid, h.get("aid"), _int_or_none(h.get("rows")), _int_or_none(h.get("cols")))


def _op_detach(w, conn, rid, h, body):
    w.terminal.detach(conn, h.get("aid"))


def _op_tin(w, conn, rid, h, body):
    w.terminal.input(conn, h.get("aid"), body)


def _op_resize(w, conn, rid, h, body):
    rows, cols = _int_or_none(h.get("rows")), _int_or_none(h.get("cols"))
    if rows and cols:
        w.terminal.resize(rows, cols)


HANDLERS = {"attach": _op_attach, "detach": _op_detach, "tin": _op_tin, "resize": _op_resize}


def install(worker):
    """Creates the session's PTY and relay; a system without PTYs keeps a worker without attach."""
    try:
        if termios is None or not hasattr(os, "openpty"):
            raise OSError("this platform has no POSIX PTY")
        worker.terminal = Terminal(worker)
    except OSError as e:
        sys.stderr.write("pythond: no terminal for this session: %s\n" % e)
        return
    human.install(worker, worker.terminal)
    worker.terminal.start()
