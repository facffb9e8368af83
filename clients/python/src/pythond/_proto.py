"""The wire protocol without I/O, shared by the sync and asyncio clients.

Frames are WebSocket text frames: the first line is the command and its arguments, the rest is
the code body, raw. On subprotocol ``pythond.1`` a ``run`` (and ``wait``) streams ``CELL <id>``,
binary frames of raw output as produced, then ``OK`` or ``ERR execution failed\\n<traceback>``.

Each operation is a generator that yields actions to its driver (client.py, aio.py):
``(SEND, frame)``, ``(RECV,)`` answered with the next message (``str`` text or ``bytes``), and
``(OUTPUT, text)`` for a piece of a cell's output; its return value is the result.
"""
from __future__ import annotations

import codecs
import json
import re
from typing import Any, Generator, List, Optional, Tuple, TypeVar, Union

from .errors import ExecutionFailed, InvalidName, PythondError, classify, error_for, from_reply

# Offered in this order: error replies with their code (`ERR <code>: <message>`) when the daemon
# speaks it, else plain pythond.1 (replies are classified by their message then).
SUBPROTOCOLS = ["pythond.1+codes", "pythond.1"]
SEND, RECV, OUTPUT = "send", "recv", "output"

Message = Union[str, bytes]
Action = Tuple[Any, ...]
T = TypeVar("T")
#: An operation whose result is a T.
Op = Generator[Action, Optional[Message], T]

_FRAME_WORD = re.compile(r"^[^\s\x00-\x1f]{1,200}$")


def check_name(name: str) -> str:
    """A name must fit in a frame's first line as one word; whether it names a session (``work``,
    or ``srv/work`` behind a proxy or node) is the daemon's to say (InvalidName, NoSession)."""
    if not isinstance(name, str) or not _FRAME_WORD.match(name):
        raise InvalidName("invalid session name: %r (lowercase a-z 0-9 _ -, 1 to 80 characters)" % (name,))
    return name


def frame(cmd: str, args: List[str] = (), body: Optional[str] = None) -> str:  # type: ignore[assignment]
    head = " ".join([cmd] + list(args))
    return head if body is None else head + "\n" + body


class RunResult(object):
    """The end of a cell: ``output`` (what it printed), ``ok``, ``error`` (the traceback, or "")
    and ``cell_id``."""

    __slots__ = ("cell_id", "output", "ok", "error")

    def __init__(self, cell_id: Optional[str], output: str, ok: bool, error: str) -> None:
        self.cell_id = cell_id
        self.output = output
        self.ok = ok
        self.error = error

    @property
    def traceback(self) -> str:
        return self.error

    def raise_for_error(self) -> "RunResult":
        """Raises :class:`ExecutionFailed` (with the traceback) unless the cell succeeded."""
        if not self.ok:
            raise ExecutionFailed(self.error, self.output, self.cell_id)
        return self

    def __repr__(self) -> str:
        return "RunResult(cell_id=%r, ok=%r, output=%r, error=%r)" % (self.cell_id, self.ok, self.output, self.error)


class CellState(dict):  # type: ignore[type-arg]
    """A cell's state as ``poll`` reports it (a dict, with attributes for the usual keys)."""

    @property
    def cell_id(self) -> Optional[str]:
        return self.get("cell_id")

    @property
    def status(self) -> str:
        return str(self.get("status"))

    @property
    def output(self) -> str:
        return str(self.get("output", ""))

    @property
    def error(self) -> bool:
        return bool(self.get("error", False))


class SessionInfo(object):
    """One session of ``ls``: ``name``, ``state`` (alive, starting, dead, incompatible, remote),
    ``pid`` and ``detail`` (why it is dead, or a remote's endpoint)."""

    __slots__ = ("name", "state", "pid", "detail")

    def __init__(self, name: str, state: str, pid: Optional[int] = None, detail: Optional[str] = None) -> None:
        self.name, self.state, self.pid, self.detail = name, state, pid, detail

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SessionInfo) and (self.name, self.state, self.pid, self.detail) == (
            other.name, other.state, other.pid, other.detail)

    def __repr__(self) -> str:
        return "SessionInfo(name=%r, state=%r, pid=%r, detail=%r)" % (self.name, self.state, self.pid, self.detail)


def parse_ls(text: str) -> List[SessionInfo]:
    out = []
    for raw in text.split("\n"):
        m = re.match(r"^\s+([a-z0-9_-]+): (.*)$", raw)
        if not m:
            continue
        name, rest = m.group(1), m.group(2)
        r = re.match(r"^alive pid=(\d+)", rest)
        if r:
            out.append(SessionInfo(name, "alive", int(r.group(1))))
        elif rest.startswith("starting"):
            out.append(SessionInfo(name, "starting"))
        elif re.match(r"^incompatible pid=(\d+) \((.*)\)$", rest):
            r = re.match(r"^incompatible pid=(\d+) \((.*)\)$", rest)
            out.append(SessionInfo(name, "incompatible", int(r.group(1)), r.group(2)))  # type: ignore[union-attr]
        elif re.match(r"^dead \((.*)\)$", rest):
            out.append(SessionInfo(name, "dead", None, re.match(r"^dead \((.*)\)$", rest).group(1)))  # type: ignore[union-attr]
        elif re.match(r"^-> (.*?) \(remote(.*)\)$", rest):
            r = re.match(r"^-> (.*?) \(remote(.*)\)$", rest)
            out.append(SessionInfo(name, "remote", None, r.group(1) + r.group(2)))  # type: ignore[union-attr]
    return out


def next_text() -> Generator[Action, Optional[Message], str]:
    while True:
        m = yield (RECV,)
        if isinstance(m, str):
            return m


def request(cmd: str, args: List[str] = (), body: Optional[str] = None) -> "Op[str]":  # type: ignore[assignment]
    """One command, one text reply; ``ERR ...`` raises with its code."""
    yield (SEND, frame(cmd, args, body))
    reply = yield from next_text()
    if reply.startswith("ERR "):
        raise from_reply(reply)
    return reply


def request_json(cmd: str, args: List[str] = (), body: Optional[str] = None) -> "Op[Any]":  # type: ignore[assignment]
    text = yield from request(cmd, args, body)
    return json.loads(text)


def streamed(cmd: str, args: List[str], body: Optional[str]) -> "Op[RunResult]":
    """``run`` / ``wait`` on pythond.1: yields OUTPUT pieces, returns a RunResult."""
    yield (SEND, frame(cmd, args, body))
    dec = codecs.getincrementaldecoder("utf-8")("replace")
    parts: List[str] = []
    cell_id: Optional[str] = None
    while True:
        try:
            m = yield (RECV,)
        except PythondError as e:
            # The daemon went away mid-cell: the cell runs on in its session; say how to get it.
            raise _with_hint(e, cell_id) if cell_id else e
        if isinstance(m, bytes):
            t = dec.decode(m)
            if t:
                parts.append(t)
                yield (OUTPUT, t)
            continue
        assert m is not None
        if m.startswith("CELL "):
            cell_id = m[5:]
            continue
        t = dec.decode(b"", True)
        if t:
            parts.append(t)
            yield (OUTPUT, t)
        output = "".join(parts)
        if m == "OK":
            return RunResult(cell_id, output, True, "")
        if m.startswith("ERR "):
            # `ERR execution failed\n<tb>`, or with a code (`ERR execution_failed: execution failed\n<tb>`).
            code, message = classify(m)
            if code == "execution_failed":
                return RunResult(cell_id, output, False, re.sub(r"^execution failed\n?", "", message))
            raise from_reply(m)
        raise PythondError("unexpected reply to %s: %s" % (cmd, m[:200]))


def _with_hint(e: PythondError, cell_id: str) -> PythondError:
    e.message = "%s -- cell %s keeps running; get its result with session.wait(%r)" % (e.message, cell_id, cell_id)
    e.args = (e.message,)
    return e


def new_args(name: str, replace: bool, python: Optional[str], cwd: str, idle_timeout: Optional[float]) -> List[str]:
    from urllib.parse import quote

    # Paths travel percent-encoded (a frame's first line is split on spaces), as pysh sends them.
    args = [check_name(name), "--cwd", quote(cwd, safe="")]
    if replace:
        args.append("--replace")
    if python:
        args += ["--python", quote(python, safe="")]
    if idle_timeout:
        args += ["--idle-timeout", _num(idle_timeout)]
    return args


def _num(x: float) -> str:
    if not x > 0:
        raise error_for("usage", "timeouts are a number of seconds > 0 (got %r)" % (x,))
    return repr(float(x)) if not float(x).is_integer() else str(int(x))


def timeout_args(timeout: Optional[float]) -> List[str]:
    return [] if timeout is None else ["--timeout", _num(timeout)]

