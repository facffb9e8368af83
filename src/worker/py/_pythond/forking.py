"""fork cells (POSIX): the cell runs in a forked child, in its own process group, killable.

The child sees a copy-on-write snapshot of the namespace. When the cell ends, every public name
that is new or rebound (compared by identity, not equality) is pickled on its own; picklable ones
are written to a result file, the rest are listed as skipped. The parent merges them (last writer
wins) as soon as the child exits. In-place mutation of an object that existed before the fork
(`lst.append(1)`) changes only the child's copy and does not merge: rebind the name instead.

Results travel through a file, read back one value at a time, so a large result is never held
twice, and never passes through the daemon. A result over the limit (PYTHOND_FORK_RESULT_LIMIT
bytes, default 256 MiB) is an error and merges nothing.

Caveat (as for any fork of a threaded process): only the forking thread exists in the child. Our
own locks are not used there (fresh stdout/stderr), but a lock a fire thread holds in user code
or a library stays locked in the child; CUDA and some BLAS builds do not survive fork at all.
"""
import io
import os
import pickle
import select
import signal
import struct
import sys
import threading
import warnings

from . import capture, execute, human, safe_fs

_open = io.open  # bound at start-up: a cell may rebind builtins.open or __import__ (os.fdopen imports)

LIMIT = int(os.environ.get("PYTHOND_FORK_RESULT_LIMIT", str(256 << 20)))
_REC = struct.Struct(">IQ")
_forks = {}  # cell id -> child pid
_lock = threading.Lock()


def start(w, cell):
    out_r, out_w = os.pipe()
    result_path = os.path.join(w.runtime_dir, "fork-%s-%s.pkl" % (w.name, cell.id))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "multi-threaded fork": we know
        pid = os.fork()
    if pid == 0:
        _child(w, cell, out_w, out_r, result_path)
    os.close(out_w)
    with _lock:
        _forks[cell.id] = pid
    threading.Thread(target=_watch, args=(w, cell, pid, out_r, result_path), name="pythond-fork-" + cell.id,
                     daemon=True).start()
    return pid


def _child(w, cell, out_w, out_r, result_path):
    status = 1
    try:
        os.setpgid(0, 0)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.close(out_r)
        for s in [w.listener] + [c.sock for c in list(w.conns.values())]:
            try:
                os.close(s.fileno())
            except OSError:
                pass
        os.dup2(out_w, 1)
        os.dup2(out_w, 2)
        os.close(out_w)
        stream = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", errors="backslashreplace",
                                  line_buffering=True, write_through=True)
        capture.STREAMS = (stream, stream)  # what each cell starts with here (execute.execute)
        sys.stdout = sys.stderr = stream
        before = dict(w.ns)
        result = execute.execute(cell.code, w.ns, "<cell-%s>" % cell.id)
        stream.flush()
        _write_results(w.ns, before, result, result_path)
        status = 0
    except BaseException as e:  # noqa: B902 - the child must always leave through os._exit
        try:
            os.write(2, ("pythond fork: %s: %s\n" % (type(e).__name__, e)).encode())
        except OSError:
            pass
    os._exit(status)


def _write_results(ns, before, result, path):
    missing = object()
    merged, skipped = [], []
    total = 0
    fd = safe_fs.create_new(path + ".tmp")
    with _open(fd, "wb") as f:
        for name, value in list(ns.items()):
            if not isinstance(name, str) or name.startswith("_") or before.get(name, missing) is value:
                continue
            try:
                data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:
                skipped.append(name)
                continue
            total += len(data)
            if total > LIMIT:
                merged = None
                break
            key = name.encode("utf-8")
            f.write(_REC.pack(len(key), len(data)))
            f.write(key)
            f.write(data)
            merged.append(name)
        meta = {"ok": result.ok, "error": result.error, "skipped": skipped, "over_limit": merged is None,
                "total": total}
        tail = pickle.dumps(meta)
        f.write(_REC.pack(0, len(tail)))
        f.write(tail)
    os.replace(path + ".tmp", path)


def _read_results(path):
    values = []
    with _open(path, "rb") as f:
        while True:
            head = f.read(_REC.size)
            if len(head) < _REC.size:
                raise ValueError("truncated fork result")
            klen, dlen = _REC.unpack(head)
            if klen == 0:
                return values, pickle.loads(f.read(dlen))
            name = f.read(klen).decode("utf-8")
            values.append((name, pickle.loads(f.read(dlen))))


def _watch(w, cell, pid, out_r, result_path):
    """Relays the child's output into the cell until it exits, then merges its results."""
    pidfd = None
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pass  # before Linux 5.3 / Python 3.9: look at the child every 50 ms instead
    status = None
    while status is None:
        fds = [out_r] + ([pidfd] if pidfd is not None else [])
        ready, _, _ = select.select(fds, [], [], None if pidfd is not None else 0.05)
        if out_r in ready:
            data = os.read(out_r, 65536)
            if data:
                cell.out.deliver_raw(data)
        if pidfd is None or pidfd in ready:
            got, st = os.waitpid(pid, os.WNOHANG)
            if got == pid:
                status = st
    while True:  # what the child wrote before it exited (grandchildren may keep the pipe open)
        r, _, _ = select.select([out_r], [], [], 0)
        if not r:
            break
        data = os.read(out_r, 65536)
        if not data:
            break
        cell.out.deliver_raw(data)
    os.close(out_r)
    if pidfd is not None:
        os.close(pidfd)
    with _lock:
        _forks.pop(cell.id, None)
    _finish(w, cell, status, result_path)


def _finish(w, cell, status, result_path):
    res = execute.Result()
    cell.extra["merged"] = []
    cell.extra["skipped"] = []
    if os.WIFSIGNALED(status):
        res.ok = False
        res.error = "(killed)" if os.WTERMSIG(status) == signal.SIGKILL else "(killed by signal %d)" % os.WTERMSIG(status)
    else:
        try:
            values, meta = _read_results(result_path)
        except (OSError, ValueError, EOFError, pickle.UnpicklingError) as e:
            values, meta = [], {"ok": False, "error": "fork result unreadable: %s" % e, "skipped": []}
        res.ok, res.error = meta["ok"], meta["error"]
        cell.extra["skipped"] = meta.get("skipped", [])
        if meta.get("over_limit"):
            res.ok = False
            res.error = (res.error + "\n" if res.error else "") + \
                "fork result over the limit (%d bytes, PYTHOND_FORK_RESULT_LIMIT); nothing merged" % LIMIT
        else:
            for name, value in values:
                w.ns[name] = value
                cell.extra["merged"].append(name)
    try:
        os.unlink(result_path)
    except OSError:
        pass
    cell.finish(res, w.history)
    human.async_note(w, cell, "end")


def kill_all():
    """SIGKILL to every running fork's process group (grandchildren too). Returns how many."""
    with _lock:
        pids = list(_forks.values())
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
    return len(pids)


def kill_cell(cell):
    """SIGKILL to one fork's process group; False when it is not (or no longer) running."""
    with _lock:
        pid = _forks.get(cell.id)
    if pid is None:
        return False
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        return False
    return True
