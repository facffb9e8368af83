"""``put`` and ``get``: the file transfer conversation of src/fleet/files/wire.ts, this side's half,
as operations (see _ops.py). The side that has the files sends, the other receives::

    sender                                     receiver
    {t:"root", kind, name, recursive}    ->
                                         <-    {t:"root", path}  (where it goes) or {t:"err"}
    {t:"entry", kind:"file", path, size, mode, mtime} ->
                                         <-    {t:"at", offset}  (resume point)
    <bytes from offset>... {t:"end", sha256, size} ->
                                         <-    {t:"ok", bytes, resumed}  or {t:"err"}
    {t:"entry", kind:"dir"|"symlink", ...} ->  <-  {t:"ok"}
    {t:"done"}                           ->    <-  {t:"done", files, bytes}

Files are received into ``.<name>.<tag>.pysh-part`` beside the target, hashed as they arrive,
renamed once the sender's SHA-256 matches; a transfer cut off leaves its part file and the next
run of the same copy resumes from it. One chunk is read per send and every send waits for the
tunnel's credit, so memory stays bounded whatever the size.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import stat as st_
from typing import Any, BinaryIO, Callable, Dict, Generator, List, Optional, Tuple

from ._ops import RECV, SEND, Action, Msg
from .errors import PythondError, error_for

CHUNK = 256 << 10
MODE_MASK = 0o1777  # setuid/setgid are not carried over (as cp without -p)
Gen = Generator[Action, Optional[Msg], Any]
Progress = Optional[Callable[[str, int, Optional[int]], None]]


def fs_error(e: BaseException, path: str, doing: str) -> PythondError:
    if isinstance(e, PythondError):
        return e
    n = getattr(e, "errno", None)
    if n == errno.ENOENT:
        return error_for("not_found", "no such file or directory: %s" % path)
    if n in (errno.EACCES, errno.EPERM):
        return error_for("permission_denied", "permission denied %s %s" % (doing, path))
    if n == errno.EROFS:
        return error_for("permission_denied", "read-only file system: cannot write %s" % path)
    if n in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        return error_for("no_space", "no space left on the device %s %s" % (doing, path))
    if n == errno.EISDIR:
        return error_for("is_directory", "is a directory: %s" % path)
    if n == errno.ENOTDIR:
        return error_for("not_directory", "not a directory: %s" % path)
    return PythondError("%s %s: %s" % (doing, path, e), "io")


def control(m: Optional[Msg]) -> Dict[str, Any]:
    if m is None:
        raise PythondError("the connection closed before the transfer finished", "transfer_failed")
    if not isinstance(m, str):
        raise PythondError("unexpected data in the transfer", "transfer_failed")
    try:
        d = json.loads(m)
    except ValueError:
        raise PythondError("bad transfer message", "transfer_failed")
    if not isinstance(d, dict):
        raise PythondError("bad transfer message", "transfer_failed")
    if d.get("t") == "err":
        raise error_for(str(d.get("code") or "io"), str(d.get("message")))
    return d


def recv_control() -> Generator[Action, Optional[Msg], Dict[str, Any]]:
    m = yield (RECV,)
    return control(m)


def xsend(m: Any) -> Gen:
    """Sends; when the peer has closed (disk full, a checksum mismatch...), fails with the error it
    sent before closing rather than a bare "connection closed"."""
    try:
        yield (SEND, m if isinstance(m, (str, bytes)) else json.dumps(m))
    except PythondError as e:
        while True:
            r = yield (RECV,)
            if r is None:
                raise e
            if isinstance(r, str):
                control(r)


def fail(e: BaseException) -> Gen:
    """Tells the peer why we stop (best effort), then raises."""
    err = e if isinstance(e, PythondError) else PythondError(str(e), "io")
    try:
        yield (SEND, json.dumps({"t": "err", "code": err.code, "message": err.message}))
    except PythondError:
        pass
    raise err


# -- sending (put) -----------------------------------------------------------------------------

def send_tree(src: Any, recursive: bool, progress: Progress = None) -> Gen:
    """Sends a path (file, or directory with ``recursive``), or a readable binary stream / bytes."""
    summary: Dict[str, Any] = {"target": "", "files": 0, "bytes": 0, "resumed": 0}
    stream = src if not isinstance(src, (str, os.PathLike)) else None
    st = None
    if stream is None:
        src = os.fspath(src)
        try:
            st = os.stat(src)  # a symlink given by name is followed, as cp does
        except OSError as e:
            yield from fail(fs_error(e, src, "reading"))
        assert st is not None
        if st_.S_ISDIR(st.st_mode) and not recursive:
            yield from fail(error_for("is_directory", "%s is a directory (use recursive=True)" % src))
        if not st_.S_ISDIR(st.st_mode) and not st_.S_ISREG(st.st_mode):
            yield from fail(error_for("usage", "%s is not a regular file or directory" % src))
    kind = "dir" if st is not None and st_.S_ISDIR(st.st_mode) else "file"
    name = "stdin" if stream is not None else os.path.basename(src.rstrip("/")) or src
    try:
        yield from xsend({"t": "root", "kind": kind, "name": name, "recursive": bool(recursive)})
        root = yield from recv_control()
        if root.get("t") != "root" or "path" not in root:
            raise PythondError("unexpected reply to the transfer", "transfer_failed")
        summary["target"] = root["path"]
        if stream is not None:
            yield from _send_stream(stream, summary, progress)
        elif kind == "file":
            assert st is not None
            yield from _send_file(src, "", st, summary, progress)
        else:
            assert st is not None
            yield from _send_dir(src, "", st, summary, progress)
        yield from xsend({"t": "done"})
        yield from recv_control()
    except PythondError as e:
        yield from fail(e)
    return summary


def _send_dir(abs_: str, rel: str, st: os.stat_result, summary: Dict[str, Any], progress: Progress) -> Gen:
    yield from xsend({"t": "entry", "kind": "dir", "path": rel, "mode": st.st_mode & 0o7777})
    yield from recv_control()
    try:
        names = sorted(os.listdir(abs_))
    except OSError as e:
        raise fs_error(e, abs_, "reading")
    for name in names:
        a = os.path.join(abs_, name)
        r = rel + "/" + name if rel else name
        try:
            s = os.lstat(a)
        except OSError as e:
            raise fs_error(e, a, "reading")
        if st_.S_ISDIR(s.st_mode):
            yield from _send_dir(a, r, s, summary, progress)
        elif st_.S_ISREG(s.st_mode):
            yield from _send_file(a, r, s, summary, progress)
        elif st_.S_ISLNK(s.st_mode):
            yield from xsend({"t": "entry", "kind": "symlink", "path": r, "target": os.readlink(a)})
            yield from recv_control()
        # sockets, fifos and devices are not files to copy (as rsync without --devices --specials)


def _send_file(abs_: str, rel: str, st: os.stat_result, summary: Dict[str, Any], progress: Progress) -> Gen:
    try:
        fh = open(abs_, "rb")
    except OSError as e:
        raise fs_error(e, abs_, "reading")
    with fh:
        size = os.fstat(fh.fileno()).st_size
        yield from xsend({"t": "entry", "kind": "file", "path": rel, "size": size, "mode": st.st_mode & 0o7777,
                          "mtime": st.st_mtime_ns // 1000000})
        at = yield from recv_control()
        offset = int(at.get("offset") or 0) if at.get("t") == "at" else 0
        h = hashlib.sha256()
        pos = 0
        while pos < offset:  # the prefix the receiver kept is hashed from our copy: a mismatch shows at the end
            b = fh.read(min(CHUNK, offset - pos))
            if not b:
                break
            h.update(b)
            pos += len(b)
        summary["resumed"] += pos
        fh.seek(pos)
        while True:
            try:
                data = fh.read(CHUNK)
            except OSError as e:
                raise fs_error(e, abs_, "reading")
            if not data:
                break
            h.update(data)
            yield from xsend(data)
            pos += len(data)
            summary["bytes"] += len(data)
            if progress:
                progress(rel or abs_, pos, size)
        yield from xsend({"t": "end", "sha256": h.hexdigest(), "size": pos})
        yield from recv_control()
        summary["files"] += 1


def _send_stream(stream: Any, summary: Dict[str, Any], progress: Progress) -> Gen:
    yield from xsend({"t": "entry", "kind": "file", "path": "", "size": None, "mode": 0o644, "mtime": 0})
    yield from recv_control()
    h = hashlib.sha256()
    pos = 0
    chunks = [bytes(stream)] if isinstance(stream, (bytes, bytearray, memoryview)) else iter(lambda: stream.read(CHUNK), b"")
    for data in chunks:
        for at in range(0, len(data), CHUNK):
            piece = bytes(data[at:at + CHUNK])
            h.update(piece)
            yield from xsend(piece)
            pos += len(piece)
            summary["bytes"] += len(piece)
            if progress:
                progress("-", pos, None)
    yield from xsend({"t": "end", "sha256": h.hexdigest(), "size": pos})
    yield from recv_control()
    summary["files"] += 1


# -- receiving (get) ---------------------------------------------------------------------------

def _stat(p: str) -> Optional[os.stat_result]:
    try:
        return os.stat(p)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise fs_error(e, p, "checking")


def _resolve_target(dest: str, kind: str, name: str) -> str:
    """Where the root goes, as cp decides it."""
    s = _stat(dest)
    if s is not None and st_.S_ISDIR(s.st_mode):
        return os.path.join(dest, name)
    if s is not None and kind == "dir":
        raise error_for("not_directory", "%s exists and is not a directory" % dest)
    parent = os.path.dirname(os.path.abspath(dest))
    ps = _stat(parent)
    if ps is None:
        raise error_for("not_found", "no such directory: %s" % parent)
    if not st_.S_ISDIR(ps.st_mode):
        raise error_for("not_directory", "not a directory: %s" % parent)
    return dest


def _inside(root: str, rel: str) -> str:
    """An entry's path under the root: never climbs out (``..``), never goes through a symlink."""
    parts = [p for p in rel.split("/") if p not in ("", ".", "..")]
    at = root
    for p in parts[:-1]:
        at = os.path.join(at, p)
        try:
            s = os.lstat(at)
        except OSError:
            continue
        if not st_.S_ISDIR(s.st_mode):
            raise PythondError("refusing to write through %s (not a directory)" % at, "transfer_failed")
    return os.path.join(root, *parts)


def _make_dir(path: str, mode: int) -> None:
    try:
        os.mkdir(path, mode | 0o700)  # we must be able to fill it; its own bits after
    except FileExistsError:
        if not os.path.isdir(path) or os.path.islink(path):
            raise error_for("not_directory", "%s exists and is not a directory" % path)
    except OSError as e:
        raise fs_error(e, path, "creating")
    try:
        os.chmod(path, mode | 0o700)
    except OSError as e:
        raise fs_error(e, path, "writing")


def part_name(path: str, entry: Dict[str, Any]) -> str:
    if entry.get("size") is None:
        tag = os.urandom(4).hex()
    else:
        tag = hashlib.sha256(("%s:%s:%s" % (entry.get("size"), entry.get("mtime"), entry.get("mode"))).encode()).hexdigest()[:10]
    return os.path.join(os.path.dirname(path), ".%s.%s.pysh-part" % (os.path.basename(path), tag))


def receive_tree(dest: Any, resume: bool, progress: Progress = None) -> Gen:
    """Receives into ``dest`` (a path), or writes a single file to ``dest`` when it is a writable
    binary stream."""
    stream: Optional[BinaryIO] = dest if not isinstance(dest, (str, os.PathLike)) else None
    summary: Dict[str, Any] = {"target": dest if stream is None else "-", "files": 0, "bytes": 0, "resumed": 0,
                               "resumed_files": []}
    try:
        root = yield from recv_control()
        if root.get("t") != "root" or "kind" not in root:
            raise PythondError("the transfer did not start with its root", "transfer_failed")
        if stream is not None:
            if root["kind"] != "file":
                raise error_for("usage", "a directory cannot be written to a stream (give a local path)")
        else:
            summary["target"] = _resolve_target(os.fspath(dest), str(root["kind"]), str(root.get("name")))
        yield from xsend({"t": "root", "path": summary["target"]})
        dir_modes: List[Tuple[str, int]] = []
        while True:
            m = yield from recv_control()
            if m.get("t") == "done":
                break
            if m.get("t") != "entry":
                raise PythondError("unexpected '%s' in the transfer" % m.get("t"), "transfer_failed")
            path = _inside(summary["target"], str(m["path"])) if m.get("path") else summary["target"]
            if m["kind"] == "dir":
                _make_dir(path, int(m["mode"]))
                dir_modes.append((path, int(m["mode"]) & MODE_MASK))
                yield from xsend({"t": "ok"})
            elif m["kind"] == "symlink":
                try:
                    if os.path.lexists(path):
                        os.unlink(path)
                    os.symlink(str(m["target"]), path)
                except OSError as e:
                    raise fs_error(e, path, "writing")
                yield from xsend({"t": "ok"})
            elif stream is not None:
                yield from _receive_to_stream(stream, m, summary, progress)
            else:
                yield from _receive_file(path, m, resume, summary, progress)
        for p, mode in reversed(dir_modes):
            try:
                os.chmod(p, mode)
            except OSError as e:
                raise fs_error(e, p, "writing")
        yield from xsend({"t": "done", "files": summary["files"], "bytes": summary["bytes"]})
    except PythondError as e:
        yield from fail(e)
    return summary


def _receive_file(path: str, m: Dict[str, Any], resume: bool, summary: Dict[str, Any], progress: Progress) -> Gen:
    existing = _stat(path)
    if existing is not None and st_.S_ISDIR(existing.st_mode):
        raise error_for("is_directory", "%s is a directory" % path)
    part = part_name(path, m)
    size = m.get("size")
    old = _stat(part) if resume and size is not None else None
    reuse = old is not None and size is not None and old.st_size <= int(size)
    h = hashlib.sha256()
    offset = 0
    try:
        fd = os.open(part, os.O_RDWR | os.O_CREAT | (0 if reuse else os.O_TRUNC), 0o600)
    except OSError as e:
        raise fs_error(e, path, "writing")
    fh = os.fdopen(fd, "r+b")
    keep = False
    try:
        if reuse:  # what arrived before is hashed again: the sender's digest covers the whole file
            while True:
                b = fh.read(CHUNK)
                if not b:
                    break
                h.update(b)
                offset += len(b)
        pos = offset
        yield from xsend({"t": "at", "offset": offset})
        while True:
            d = yield (RECV,)
            if d is None:
                keep = True  # the next transfer of this source resumes from it
                raise PythondError("the transfer of %s was cut off after %d bytes (run it again to resume)" % (
                    path, pos), "transfer_failed")
            if isinstance(d, str):
                end = control(d)
                if end.get("t") != "end":
                    raise PythondError("unexpected '%s' in a file" % end.get("t"), "transfer_failed")
                if h.hexdigest() != end.get("sha256"):
                    raise error_for("checksum_mismatch", "checksum mismatch for %s (SHA-256 differs from the sender's; "
                                                         "nothing was kept, run it again)" % path)
                break
            try:
                fh.write(d)
            except OSError as e:
                raise fs_error(e, path, "writing")
            h.update(d)
            pos += len(d)
            summary["bytes"] += len(d)
            if progress:
                progress(path, pos, size)
        try:
            fh.close()
            os.chmod(part, int(m.get("mode") or 0o644) & MODE_MASK)
            os.replace(part, path)
        except OSError as e:
            raise fs_error(e, path, "writing")
        keep = True
    finally:
        if not fh.closed:
            try:
                fh.close()
            except OSError:
                pass
        if not keep:
            try:
                os.unlink(part)
            except OSError:
                pass
    summary["files"] += 1
    summary["resumed"] += offset
    if offset:
        summary["resumed_files"].append(path)
    yield from xsend({"t": "ok", "bytes": pos, "resumed": offset})


def _receive_to_stream(out: BinaryIO, m: Dict[str, Any], summary: Dict[str, Any], progress: Progress) -> Gen:
    h = hashlib.sha256()
    pos = 0
    yield from xsend({"t": "at", "offset": 0})
    while True:
        d = yield (RECV,)
        if d is None or isinstance(d, str):
            end = control(d)
            if end.get("t") != "end":
                raise PythondError("unexpected '%s' in a file" % end.get("t"), "transfer_failed")
            if h.hexdigest() != end.get("sha256"):
                raise error_for("checksum_mismatch", "checksum mismatch (SHA-256 differs from the sender's)")
            break
        out.write(d)
        h.update(d)
        pos += len(d)
        summary["bytes"] += len(d)
        if progress:
            progress("-", pos, m.get("size"))
    summary["files"] += 1
    yield from xsend({"t": "ok", "bytes": pos, "resumed": 0})
