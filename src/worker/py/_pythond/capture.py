"""Per-cell output capture.

Every cell has an Out. Python-level writes (sys.stdout / sys.stderr) are routed by thread: the
thread that runs a cell, and threads that cell starts, write into that cell. File descriptors 1
and 2 are one pipe for the worker's whole life; a capture thread reads it and hands the bytes to
the "fd owner", the sync cell running on the main thread (subprocesses and C code write there),
or to the terminal sink when no sync cell runs.

Ordering between the two paths: before a Python write of the fd owner is buffered we look at the
pipe (FIONREAD); bytes waiting there were written before this write, so the buffered Python text is
delivered, then the pipe is drained, then the new text is buffered. The capture thread, in turn,
delivers the owner's buffered Python text before the pipe bytes it just read. Together this keeps
`print('a'); os.system('echo b'); print('c')` in order without a syscall per delivery.
"""
import _thread
import array
import fcntl
import io
import os
import select
import sys
import termios
import threading
import time

from . import wire

FLUSH_AT = 65536
TICK = 0.05
IDLE_AFTER = 2.0

_cells_by_thread = {}
PIPE_LOCK = threading.RLock()


def current_out():
    return _cells_by_thread.get(threading.get_ident())


def bind_thread(out):
    if out is None:
        _cells_by_thread.pop(threading.get_ident(), None)
    else:
        _cells_by_thread[threading.get_ident()] = out


# The worker's own sys.stdout / sys.stderr (set in server.setup): each cell starts with them,
# whatever an earlier cell did to sys.stdout (restore_streams, called by execute.execute).
STREAMS = None
_spare_fds = {}  # 1, 2 -> a copy of the capture pipe's write end, to put back a closed fd 1 or 2


def restore_streams():
    """Called as a cell starts (its thread already bound). With no other cell running, sys.stdout
    and sys.stderr go back to ours whatever a cell made of them; while others run (a fire cell in
    `with redirect_stdout(buf)`), only a stream that cannot be written to (None) is replaced."""
    if STREAMS is None:
        return
    alone = len(_cells_by_thread) <= 1
    for name, ours in (("stdout", STREAMS[0]), ("stderr", STREAMS[1])):
        cur = getattr(sys, name)
        if cur is not ours and (alone or cur is None or not hasattr(cur, "write")):
            setattr(sys, name, ours)
    for fd, spare in _spare_fds.items():
        try:
            os.fstat(fd)
        except OSError:  # an earlier cell closed it: C code and subprocesses would lose their output
            os.dup2(spare, fd)


def install_thread_inheritance(format_exception):
    """Threads started by a cell write into that cell (ipykernel does the same with parent headers),
    their uncaught exceptions too: threading.excepthook runs while the thread is still the cell's,
    and the default hook prints the user's frames only (format_exception)."""
    original_start = threading.Thread.start
    except_hook_args = getattr(threading, "ExceptHookArgs", None)

    def cell_excepthook(args):
        if args.exc_type is SystemExit:
            return
        name = args.thread.name if args.thread is not None else "?"
        exc = args.exc_value
        tb = args.exc_traceback
        while tb is not None and tb.tb_frame.f_code.co_filename in (__file__, threading.__file__):
            tb = tb.tb_next  # Thread.run and our wrapper: not the user's frames
        if exc is not None and tb is not None:
            exc = exc.with_traceback(tb)
        sys.stderr.write("Exception in thread %s:\n%s\n" % (name, format_exception(exc)))

    if except_hook_args is not None:
        threading.excepthook = cell_excepthook

    def start(self):
        out = current_out()
        if out is not None:
            run = self.run
            thread = self

            def run_in_cell():
                bind_thread(out)
                try:
                    run()
                except BaseException:
                    if except_hook_args is None:
                        raise
                    exc = sys.exc_info()
                    threading.excepthook(except_hook_args((exc[0], exc[1], exc[2], thread)))
                finally:
                    bind_thread(None)

            self.run = run_in_cell
        return original_start(self)

    threading.Thread.start = start


_RLock = getattr(_thread, "RLock", None) or threading.RLock  # threading.RLock is a Python-level factory


class Out(object):
    """Output of one cell: buffered Python text plus delivery to a sink callable(bytes)."""

    def __init__(self, sink):
        self.sink = sink
        self.pending = []
        self.size = 0
        self.lock = _RLock()

    def write_bytes(self, data, owner):
        # `draining`: the capture thread may have just taken bytes out of the pipe (FIONREAD
        # says 0) without having delivered them yet; wait for it, or this text would pass them.
        if owner is self and (pipe_waiting() or _capture.draining):
            with PIPE_LOCK:
                with self.lock:
                    self._flush_locked()
                _drain_locked(self)
        with self.lock:
            self.pending.append(data)
            self.size += len(data)
            if self.size >= FLUSH_AT:
                self._flush_locked()
        if _capture.sleeping:
            _capture.touch()

    def flush(self):
        with self.lock:
            self._flush_locked()

    def _flush_locked(self):
        if not self.pending:
            return
        data = b"".join(self.pending) if len(self.pending) > 1 else self.pending[0]
        self.pending = []
        self.size = 0
        self.sink(data)

    def deliver_raw(self, data):
        with self.lock:
            self._flush_locked()
            self.sink(data)


class Capture(object):
    """Owns the fd 1/2 pipe and its reader thread.

    The thread ticks every TICK while anything may have output waiting (a cell owns the fds, fire
    cells run, or there was activity in the last IDLE_AFTER seconds): each tick flushes buffered
    Python text of every cell, and calls on_tick (the worker flushes its corked run lanes there),
    so a long cell's output streams. Idle, it sleeps on the pipe alone, and whoever brings work
    wakes it (touch()); the hysteresis keeps a burst of quick cells from waking it per cell.
    """

    def __init__(self, terminal_sink):
        self.read_fd, write_fd = os.pipe()
        os.dup2(write_fd, 1)
        os.dup2(write_fd, 2)
        _spare_fds[1] = _spare_fds[2] = write_fd  # kept (close-on-exec) for restore_streams
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        self.owner = None
        self.terminal = Out(terminal_sink)
        self.active = set()
        self.active_lock = threading.Lock()
        self.active_at = time.monotonic()
        self.sleeping = False
        self.draining = False  # set while pipe bytes are read and delivered (under PIPE_LOCK)
        self.on_tick = None
        global _capture
        _capture = self

    def start(self):
        t = threading.Thread(target=self._loop, name="pythond-capture", daemon=True)
        t.start()

    def register(self, out):
        with self.active_lock:
            self.active.add(out)
        self.touch()

    def unregister(self, out):
        with self.active_lock:
            self.active.discard(out)

    def set_owner(self, out):
        with PIPE_LOCK:
            _drain_locked(self.owner)
            self.owner = out
        if out is not None:
            self.touch()

    def own(self, out):
        """A sync cell starts on this thread: its Python writes and the fds go to out (what was
        in the pipe before goes to the previous owner). release_owner(out) ends it."""
        _cells_by_thread[threading.get_ident()] = out
        with PIPE_LOCK:
            _drain_locked(self.owner)
            self.owner = out
        self.active_at = time.monotonic()
        if self.sleeping:
            self.sleeping = False
            wire.poke(self.wake_w)

    def touch(self):
        """Work arrived: make sure the thread ticks (it checks `active_at` before sleeping)."""
        self.active_at = time.monotonic()
        if self.sleeping:
            self.sleeping = False
            wire.poke(self.wake_w)

    def _busy(self):
        return (self.owner is not None or self.active or self.terminal.pending
                or time.monotonic() - self.active_at < IDLE_AFTER)

    def _loop(self):
        fds = [self.read_fd, self.wake_r]
        while True:
            timeout = TICK
            if not self._busy():
                self.sleeping = True
                if self._busy():  # work came while we decided (touch() saw sleeping False)
                    self.sleeping = False
                else:
                    timeout = None
            ready, _, _ = select.select(fds, [], [], timeout)
            self.sleeping = False
            if self.wake_r in ready:
                try:
                    os.read(self.wake_r, 4096)
                except OSError:
                    pass
            with PIPE_LOCK:
                owner = self.owner
                if owner is not None:
                    owner.flush()
                if self.read_fd in ready:
                    _drain_locked(owner)
            with self.active_lock:
                outs = list(self.active)
            for out in outs:
                out.flush()
            self.terminal.flush()
            if self.on_tick is not None:
                self.on_tick()


_capture = None
_fionread_buf = array.array("i", [0])


def pipe_waiting():
    try:
        fcntl.ioctl(_capture.read_fd, termios.FIONREAD, _fionread_buf, True)
    except OSError:
        return 0
    return _fionread_buf[0]


def _drain_locked(owner):
    """Reads everything waiting in the pipe and delivers it to owner (caller holds PIPE_LOCK)."""
    target = owner if owner is not None else _capture.terminal
    _capture.draining = True
    try:
        while True:
            n = pipe_waiting()
            if n <= 0:
                return
            data = os.read(_capture.read_fd, max(n, 65536))
            if not data:
                return
            target.deliver_raw(data)
    finally:
        _capture.draining = False


def release_owner(out):
    """The end of a sync cell (Capture.own): its Python text, then what its fds wrote, then no
    owner; the calling thread writes to no cell any more."""
    try:
        with PIPE_LOCK:
            try:
                out.flush()
                _drain_locked(out)
            finally:
                _capture.owner = None
    finally:
        _cells_by_thread.pop(threading.get_ident(), None)


class Router(io.TextIOBase):
    """sys.stdout / sys.stderr: routes text to the writing thread's cell, or the terminal."""

    def __init__(self, name, fd):
        self._name = name
        self._fd = fd

    @property
    def name(self):
        return "<%s>" % self._name

    @property
    def encoding(self):
        return "utf-8"

    @property
    def errors(self):
        return "backslashreplace"

    def writable(self):
        return True

    def isatty(self):
        return False

    def fileno(self):
        return self._fd

    def write(self, s):
        if not isinstance(s, str):
            raise TypeError("write() argument must be str, not %s" % type(s).__name__)
        out = current_out()
        cap = _capture
        if out is None:
            out = cap.terminal
        out.write_bytes(s.encode("utf-8", "backslashreplace"), cap.owner)
        return len(s)

    def flush(self):
        out = current_out()
        if out is not None:
            out.flush()

    @property
    def buffer(self):
        return _BinaryView(self)


class _BinaryView(io.RawIOBase):
    """sys.stdout.buffer: bytes written straight into the same routing."""

    def __init__(self, router):
        self._router = router

    def writable(self):
        return True

    def write(self, b):
        out = current_out() or _capture.terminal
        out.write_bytes(bytes(b), _capture.owner)
        return len(b)

    def fileno(self):
        return self._router.fileno()


class NoInput(io.TextIOBase):
    """sys.stdin for agent cells: reading fails at once instead of hanging."""

    def __init__(self, message):
        self._message = message

    def readable(self):
        return True

    def read(self, *a):
        raise RuntimeError(self._message)

    readline = read

    def fileno(self):
        return 0

    def isatty(self):
        return False
