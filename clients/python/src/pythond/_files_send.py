"""The sending half of ``put`` and ``get`` (see _files.py): a file, a directory tree, or a stream."""
from __future__ import annotations

import hashlib
import os
import stat as st_
from typing import Any, Dict

from ._files import CHUNK, Gen, Progress, fail, fs_error, recv_control, xsend
from .errors import PythondError, error_for


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
