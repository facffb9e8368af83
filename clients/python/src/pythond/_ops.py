"""What travels in a tunnel, as operations without I/O (the drivers are _tunnel.py and aio_fleet.py).

An operation is a generator yielding actions: ``(SEND, msg)`` (str = a text unit, bytes = a data
unit; the driver waits for the window's credit), ``(RECV,)`` answered with the next message, or
None once the tunnel ended (the driver knows why), ``(OUT, fd, bytes)`` output for the caller,
``(STARTED, job_id, pid)``, ``(SKIPPED, fd, n)``. Its return value is the result.
"""
from __future__ import annotations

import json
from typing import Any, Dict, Generator, Optional, Tuple, Union

from ._fleet import record
from .errors import PythondError

SEND, RECV, OUT, STARTED, SKIPPED = "send", "recv", "out", "started", "skipped"
Msg = Union[str, bytes]
Action = Tuple[Any, ...]
Op = Generator[Action, Optional[Msg], Any]


class Lost(Exception):
    """The tunnel ended before the command did (``job_id`` None: before it started)."""

    def __init__(self, job_id: Optional[str], offsets: Dict[str, int]) -> None:
        super().__init__("tunnel lost")
        self.job_id, self.offsets = job_id, offsets


def read_output(offsets: Dict[str, int]) -> Generator[Action, Optional[Msg], Optional[Dict[str, Any]]]:
    """Output units until a record other than output arrives; returns it (None: the tunnel ended)."""
    while True:
        m = yield (RECV,)
        if m is None:
            return None
        if isinstance(m, str):
            r = record(m)
            if r.get("t") == "skipped":
                fd = 2 if r.get("fd") == 2 else 1
                offsets["err" if fd == 2 else "out"] += int(r.get("n", 0))
                yield (SKIPPED, fd, int(r.get("n", 0)))
                continue
            return r
        fd = 2 if m[:1] == b"\x02" else 1
        data = m[1:]
        offsets["err" if fd == 2 else "out"] += len(data)
        yield (OUT, fd, data)


def sh_op() -> Generator[Action, Optional[Msg], Tuple[str, Dict[str, Any]]]:
    """``sh`` attached: ``started``, output as produced, ``exit``. Returns (job id, exit record)."""
    offsets = {"out": 0, "err": 0}
    first = yield (RECV,)
    if not isinstance(first, str):
        raise Lost(None, offsets)
    started = record(first)
    job_id = str(started.get("id"))
    yield (STARTED, job_id, int(started.get("pid") or 0))
    end = yield from read_output(offsets)
    if end is None or end.get("t") != "exit":
        raise Lost(job_id, offsets)
    return job_id, end


def detached_op() -> Generator[Action, Optional[Msg], Tuple[str, int]]:
    first = yield (RECV,)
    if not isinstance(first, str):
        raise PythondError("the connection closed before the command started", "transfer_failed")
    r = record(first)
    return str(r.get("id")), int(r.get("pid") or 0)


def job_op() -> Generator[Action, Optional[Msg], Dict[str, Any]]:
    """``job`` (list, info, wait, kill): output, then the final record."""
    end = yield from read_output({"out": 0, "err": 0})
    if end is None:
        raise Lost(None, {"out": 0, "err": 0})
    return end


def eof() -> str:
    return json.dumps({"t": "eof"})


def kill() -> str:
    return json.dumps({"t": "kill"})
