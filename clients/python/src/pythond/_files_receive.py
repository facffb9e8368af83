"""The receiving half of ``put`` and ``get`` (see _files.py): part files, resume, the checksum,
the rename."""
from __future__ import annotations

import hashlib
import os
import stat as st_
from typing import Any, BinaryIO, Dict, List, Optional, Tuple

from ._files import CHUNK, Gen, Progress, control, fail, fs_error, recv_control, xsend
from ._ops import RECV
from .errors import PythondError, error_for

MODE_MASK = 0o1777  # setuid/setgid are not carried over (as cp without -p)


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
