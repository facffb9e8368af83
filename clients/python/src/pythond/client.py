"""The synchronous client: ``Client`` and its ``Session`` handles.

One client is one WebSocket connection; the daemon answers its frames in order, so calls on one
client are serialised (a lock: threads may share a client; use several clients to run cells of
different sessions at the same time).
"""
from __future__ import annotations

import os
import threading
import time
from typing import Any, TypeVar, cast, Callable, Dict, Iterator, List, Optional

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import ClientConnection, connect as ws_connect, unix_connect

from . import _endpoint as E
from . import _proto as P
from .errors import CodedReply, AuthFailed, DaemonUnreachable, PythondError, error_for
from .fleet import FleetMixin

OutputCallback = Callable[[str], None]
T = TypeVar("T")


def close_error(e: ConnectionClosed, ep: Optional[E.Endpoint] = None) -> PythondError:
    rcvd = getattr(e, "rcvd", None)
    code = rcvd.code if rcvd is not None else 1006
    reason = rcvd.reason if rcvd is not None else ""
    if code == 1009:
        return error_for("frame_too_large", "frame too large: %s" % (reason or "over the daemon's limit"))
    if code == 1008:  # a remote daemon's rejection (its ERR frame may not have been read yet)
        text = "ERR " + (reason or "auth failed")
        return AuthFailed((E.explain_rejection(ep, text) if ep is not None else text)[4:])
    if code == 1007:
        return error_for("bad_frame", "invalid frame: %s" % (reason or "not valid UTF-8"))
    return DaemonUnreachable("daemon closed the connection%s" % (": " + reason if reason else " (code %d)" % code))


def _open(ep: E.Endpoint) -> ClientConnection:
    common: Dict[str, Any] = dict(subprotocols=P.SUBPROTOCOLS, max_size=None, compression=None,
                                  open_timeout=E.connect_timeout())
    if isinstance(ep, E.Local):
        deadline = time.monotonic() + E.RESTART_GRACE_S
        while True:
            try:
                return _owned(unix_connect(ep.path, uri="ws://localhost/", **common))
            except (OSError, InvalidHandshake) as e:
                # A daemon restarting in place leaves a marker: wait for its successor instead of failing.
                if time.monotonic() > deadline or not os.path.exists(E.restart_marker(ep.path)):
                    raise E.explain_connect_error(ep, e)
                time.sleep(0.02)
    ctx, pins = E.ssl_context(ep) if ep.tls else (None, {})
    try:
        ws = _owned(ws_connect(ep.uri(), ssl=ctx, additional_headers={"Authorization": "Bearer " + ep.token}, **common))
    except (OSError, InvalidHandshake, InvalidURI) as e:
        raise E.explain_connect_error(ep, e)
    if ep.tls:
        try:
            der = ws.socket.getpeercert(binary_form=True)  # type: ignore[attr-defined]
        except (AttributeError, ValueError, OSError):
            der = None  # already closed by the daemon (a rejected token): nothing more is sent; recv says why
        if der is not None:
            try:
                E.check_pinned(ep, der, pins)
            except PythondError:
                ws.close()
                raise
    return ws


def _owned(ws: ClientConnection) -> ClientConnection:
    # This object owns the connection for its lifetime; entering it is how websockets >= 17.1 is
    # told so (a plain connect() is deprecated there), and a no-op returning itself before.
    return ws.__enter__()


class Client(FleetMixin):
    """A connection to a pythond daemon, made as pysh makes it.

    ``Client()`` uses the local socket (``PYTHOND_SOCK`` and the same path rules as pysh) or, when
    ``PYTHOND_HOST`` is set, that daemon with ``PYTHOND_TOKEN``/``PYTHOND_TLS``. Arguments override:
    ``Client(socket=path)``, ``Client(host="10.0.0.5:7399", token="...", tls=True)`` (the server's
    certificate must be pinned with ``pyctl pin``).

    On a hub (a daemon with ``--listen``) the fleet calls work too: ``nodes``, ``wait_for_node``,
    ``sh``, ``sh_many``, ``job``, ``put``, ``get`` (pythond.fleet), and ``session("node/name")``."""

    def __init__(self, socket: Optional[str] = None, host: Optional[str] = None, token: Optional[str] = None,
                 tls: Optional[bool] = None) -> None:
        self.endpoint = E.resolve(socket, host, token, tls)
        self._ws = _open(self.endpoint)
        self._lock = threading.RLock()
        self._first = True
        self._closed: Optional[PythondError] = None
        if isinstance(self.endpoint, E.Remote):
            self.hello()  # a bad token or certificate fails here, not at the first call

    # -- plumbing -----------------------------------------------------------------------------
    def _open_ws(self) -> ClientConnection:
        """Another connection to the same daemon (a tunnel or a fan-out takes one of its own)."""
        return _open(self.endpoint)

    def _recv(self) -> P.Message:
        if self._closed is not None:
            raise self._closed
        try:
            m = self._ws.recv()
        except ConnectionClosed as e:
            self._closed = close_error(e, self.endpoint)
            raise self._closed
        if self._first and isinstance(m, str):
            self._first = False
            m = E.explain_rejection(self.endpoint, m)
        if isinstance(m, str) and m.startswith("ERR ") and self._ws.subprotocol == P.SUBPROTOCOLS[0]:
            m = CodedReply(m)  # the daemon sends codes: a tag is the code (errors.classify)
        return m

    def _send(self, frame: str) -> None:
        if self._closed is not None:
            raise self._closed
        try:
            self._ws.send(frame)
        except ConnectionClosed as e:
            self._closed = close_error(e, self.endpoint)
            raise self._closed

    def _steps(self, op: "P.Op[Any]", box: List[Any]) -> Iterator[str]:
        """Drives an operation; yields its output pieces; the result is in the StopIteration."""
        try:
            action = next(op)
            while True:
                if action[0] == P.SEND:
                    self._send(action[1])
                    action = op.send(None)
                elif action[0] == P.RECV:
                    try:
                        m = self._recv()
                    except PythondError as e:
                        action = op.throw(e)
                        continue
                    action = op.send(m)
                else:
                    yield action[1]
                    action = op.send(None)
        except StopIteration as e:
            box.append(e.value)

    def _call(self, op: "P.Op[T]", on_output: Optional[OutputCallback] = None) -> T:
        box: List[Any] = []
        failed: Optional[BaseException] = None
        with self._lock:
            for piece in self._steps(op, box):
                if on_output is not None and failed is None:
                    try:
                        on_output(piece)
                    except BaseException as e:  # noqa: B902 - re-raised once the cell's frames are read
                        failed = e
        if failed is not None:
            raise failed  # the connection is in step: the reply was read to its end
        return cast(T, box[0])

    # -- API ------------------------------------------------------------------------------------
    def request(self, cmd: str, *args: str, body: Optional[str] = None) -> str:
        """A raw command and its text reply (``ERR ...`` raises with its code)."""
        return self._call(P.request(cmd, list(args), body))

    def hello(self) -> Dict[str, Any]:
        """The daemon's version, protocol, pid and listeners."""
        return dict(self._call(P.request_json("hello")))

    def ls(self) -> List[P.SessionInfo]:
        return P.parse_ls(self._call(P.request("ls")))

    def new(self, name: str, replace: bool = False, python: Optional[str] = None, cwd: Optional[str] = None,
            idle_timeout: Optional[float] = None) -> "Session":
        """Creates a session (``replace=True`` ends an existing one of that name first) and returns it."""
        self._call(P.request("new", P.new_args(name, replace, python, cwd or os.getcwd(), idle_timeout)))
        return Session(self, name)

    def session(self, name: str) -> "Session":
        """A handle on an existing session (nothing is sent until it is used)."""
        return Session(self, P.check_name(name))

    def close(self) -> None:
        self._ws.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class CellStream(object):
    """Output of a running cell, piece by piece; ``result`` is set once iteration ends."""

    def __init__(self, client: Client, op: "P.Op[P.RunResult]") -> None:
        self._client, self._op = client, op
        self.result: Optional[P.RunResult] = None

    def __iter__(self) -> Iterator[str]:
        c = self._client
        box: List[Any] = []
        with c._lock:
            steps = c._steps(self._op, box)
            try:
                for piece in steps:
                    yield piece
            finally:
                for _ in steps:  # abandoned early: read the cell to its end so the connection stays in step
                    pass
        self.result = box[0] if box else None


class Session(object):
    """A named session on a daemon."""

    def __init__(self, client: Client, name: str) -> None:
        self.client, self.name = client, name

    def run(self, code: str, timeout: Optional[float] = None, on_output: Optional[OutputCallback] = None) -> P.RunResult:
        """Runs code on the session's main thread; returns when it ends. ``on_output`` gets output as
        it is produced; ``timeout`` interrupts the cell after that many seconds (the session lives on).
        A cell that raised returns ``ok=False`` with the traceback in ``error``."""
        return self.client._call(P.streamed("run", [self.name] + P.timeout_args(timeout), code), on_output)

    def stream(self, code: str, timeout: Optional[float] = None) -> CellStream:
        """``for piece in s.stream(code): ...`` -- output as produced; then ``.result``."""
        return CellStream(self.client, P.streamed("run", [self.name] + P.timeout_args(timeout), code))

    def fire(self, code: str) -> str:
        """Runs code in a thread sharing the namespace; returns its cell id at once."""
        return str(self.client._call(P.request_json("fire", [self.name], code))["cell_id"])

    def fork(self, code: str) -> str:
        """Runs code in a forked child (POSIX); picklable new names merge back; returns its cell id."""
        return str(self.client._call(P.request_json("fork", [self.name], code))["cell_id"])

    def poll(self, cell_id: Optional[str] = None) -> P.CellState:
        """A cell's state (``status``: running, done, error; ``output``); the latest cell without an id."""
        return P.CellState(self.client._call(P.request_json("poll", [self.name] + ([cell_id] if cell_id else []))))

    def wait(self, cell_id: str, timeout: Optional[float] = None, on_output: Optional[OutputCallback] = None) -> P.RunResult:
        """Blocks until the cell ends and returns its result; raises :class:`Timeout` after ``timeout`` s."""
        return self.client._call(P.streamed("wait", [self.name, cell_id] + P.timeout_args(timeout), None), on_output)

    def interrupt(self) -> str:
        """Interrupts what runs; returns what was interrupted (``OK int work: 1 run (interrupted)``)."""
        return self.client._call(P.request("int", [self.name]))

    def vars(self) -> List[str]:
        return list(self.client._call(P.request_json("vars", [self.name]))["vars"])

    def complete(self, text: str) -> List[str]:
        return list(self.client._call(P.request_json("complete", [self.name], text))["matches"])

    def status(self) -> Dict[str, Any]:
        return dict(self.client._call(P.request_json("status", [self.name])))

    def kill(self) -> None:
        """Ends the session (its namespace is lost)."""
        self.client._call(P.request("kill", [self.name]))

    def __repr__(self) -> str:
        return "Session(%r)" % self.name


__all__ = ["Client", "Session", "CellStream"]
