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

This module has what both sides share; the halves are _files_send.py (put) and
_files_receive.py (get).
"""
from __future__ import annotations

import errno
import json
from typing import Any, Callable, Dict, Generator, Optional

from ._ops import RECV, SEND, Action, Msg
from .errors import PythondError, error_for

CHUNK = 256 << 10
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
