"""The asyncio client: ``AsyncClient`` and ``AsyncSession``, the same operations as client.py.

    async with await AsyncClient.connect() as c:
        s = await c.new("work")
        r = await s.run("print(1 + 1)")
        async for piece in s.stream("for i in range(3): print(i)"):
            ...
"""
from __future__ import annotations

import asyncio
import os
import time
from typing import Any, TypeVar, cast, AsyncIterator, Dict, List, Optional

from websockets.asyncio.client import ClientConnection, connect as ws_connect, unix_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from . import _endpoint as E
from . import _proto as P
from .client import OutputCallback, close_error
from .aio_fleet import AsyncFleetMixin
from .errors import CodedReply, PythondError

T = TypeVar("T")


async def _open(ep: E.Endpoint) -> ClientConnection:
    common: Dict[str, Any] = dict(subprotocols=P.SUBPROTOCOLS, max_size=None, compression=None,
                                  open_timeout=E.connect_timeout())
    if isinstance(ep, E.Local):
        deadline = time.monotonic() + E.RESTART_GRACE_S
        while True:
            try:
                return await unix_connect(ep.path, uri="ws://localhost/", **common)
            except (OSError, InvalidHandshake) as e:
                if time.monotonic() > deadline or not os.path.exists(E.restart_marker(ep.path)):
                    raise E.explain_connect_error(ep, e)
                await asyncio.sleep(0.02)
    loop = asyncio.get_running_loop()
    # Reading the pins may probe the server (for the error message): keep that off the loop.
    ctx, pins = await loop.run_in_executor(None, E.ssl_context, ep) if ep.tls else (None, {})
    try:
        ws = await ws_connect(ep.uri(), ssl=ctx, additional_headers={"Authorization": "Bearer " + ep.token}, **common)
    except (OSError, InvalidHandshake, InvalidURI, asyncio.TimeoutError) as e:
        raise await loop.run_in_executor(None, E.explain_connect_error, ep, e)
    if ep.tls:
        sslobj = ws.transport.get_extra_info("ssl_object")
        try:
            E.check_pinned(ep, sslobj.getpeercert(binary_form=True) if sslobj else None, pins)
        except PythondError:
            await ws.close()
            raise
    return ws


class AsyncClient(AsyncFleetMixin):
    """A connection to a daemon, made as pysh makes it (see :class:`pythond.Client`).

    ``c = await AsyncClient.connect(...)``, or ``async with AsyncClient(...) as c:``."""

    def __init__(self, socket: Optional[str] = None, host: Optional[str] = None, token: Optional[str] = None,
                 tls: Optional[bool] = None) -> None:
        self.endpoint = E.resolve(socket, host, token, tls)
        self._ws: Optional[ClientConnection] = None
        self._lock: Optional[asyncio.Lock] = None
        self._first = True
        self._closed: Optional[PythondError] = None

    @classmethod
    async def connect(cls, socket: Optional[str] = None, host: Optional[str] = None, token: Optional[str] = None,
                      tls: Optional[bool] = None) -> "AsyncClient":
        c = cls(socket, host, token, tls)
        await c.open()
        return c

    async def open(self) -> None:
        if self._ws is None:
            self._ws = await _open(self.endpoint)
            self._lock = asyncio.Lock()
            if isinstance(self.endpoint, E.Remote):
                await self.hello()

    async def __aenter__(self) -> "AsyncClient":
        await self.open()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()

    # -- plumbing -----------------------------------------------------------------------------
    async def _open_ws(self) -> ClientConnection:
        """Another connection to the same daemon (a tunnel or a fan-out takes one of its own)."""
        return await _open(self.endpoint)

    async def _recv(self) -> P.Message:
        if self._closed is not None:
            raise self._closed
        assert self._ws is not None, "not connected: use AsyncClient.connect() or async with"
        try:
            m = await self._ws.recv()
        except ConnectionClosed as e:
            self._closed = close_error(e, self.endpoint)
            raise self._closed
        if self._first and isinstance(m, str):
            self._first = False
            m = E.explain_rejection(self.endpoint, m)
        if isinstance(m, str) and m.startswith("ERR ") and self._ws.subprotocol == P.SUBPROTOCOLS[0]:
            m = CodedReply(m)  # the daemon sends codes: a tag is the code (errors.classify)
        return m

    async def _send(self, frame: str) -> None:
        if self._closed is not None:
            raise self._closed
        assert self._ws is not None, "not connected: use AsyncClient.connect() or async with"
        try:
            await self._ws.send(frame)
        except ConnectionClosed as e:
            self._closed = close_error(e, self.endpoint)
            raise self._closed

    async def _steps(self, op: "P.Op[Any]", box: List[Any]) -> AsyncIterator[str]:
        try:
            action = next(op)
            while True:
                if action[0] == P.SEND:
                    await self._send(action[1])
                    action = op.send(None)
                elif action[0] == P.RECV:
                    try:
                        m = await self._recv()
                    except PythondError as e:
                        action = op.throw(e)
                        continue
                    action = op.send(m)
                else:
                    yield action[1]
                    action = op.send(None)
        except StopIteration as e:
            box.append(e.value)

    async def _call(self, op: "P.Op[T]", on_output: Optional[OutputCallback] = None) -> T:
        await self.open()
        assert self._lock is not None
        box: List[Any] = []
        failed: Optional[BaseException] = None
        async with self._lock:
            async for piece in self._steps(op, box):
                if on_output is not None and failed is None:
                    try:
                        on_output(piece)
                    except BaseException as e:  # noqa: B902 - re-raised once the cell's frames are read
                        failed = e
        if failed is not None:
            raise failed  # the connection is in step: the reply was read to its end
        return cast(T, box[0])

    # -- API ------------------------------------------------------------------------------------
    async def request(self, cmd: str, *args: str, body: Optional[str] = None) -> str:
        return await self._call(P.request(cmd, list(args), body))

    async def hello(self) -> Dict[str, Any]:
        return dict(await self._call(P.request_json("hello")))

    async def ls(self) -> List[P.SessionInfo]:
        return P.parse_ls(await self._call(P.request("ls")))

    async def new(self, name: str, replace: bool = False, python: Optional[str] = None, cwd: Optional[str] = None,
                  idle_timeout: Optional[float] = None) -> "AsyncSession":
        await self._call(P.request("new", P.new_args(name, replace, python, cwd or os.getcwd(), idle_timeout)))
        return AsyncSession(self, name)

    def session(self, name: str) -> "AsyncSession":
        return AsyncSession(self, P.check_name(name))


class AsyncCellStream(object):
    """``async for piece in s.stream(code)``; ``result`` is set once iteration ends."""

    def __init__(self, client: AsyncClient, op: "P.Op[P.RunResult]") -> None:
        self._client, self._op = client, op
        self.result: Optional[P.RunResult] = None

    async def __aiter__(self) -> AsyncIterator[str]:
        c = self._client
        await c.open()
        assert c._lock is not None
        box: List[Any] = []
        async with c._lock:
            steps = c._steps(self._op, box)
            try:
                async for piece in steps:
                    yield piece
            finally:
                async for _ in steps:  # abandoned early: read the cell to its end
                    pass
        self.result = box[0] if box else None


class AsyncSession(object):
    """A named session (see :class:`pythond.Session` for each operation)."""

    def __init__(self, client: AsyncClient, name: str) -> None:
        self.client, self.name = client, name

    async def run(self, code: str, timeout: Optional[float] = None, on_output: Optional[OutputCallback] = None) -> P.RunResult:
        return await self.client._call(P.streamed("run", [self.name] + P.timeout_args(timeout), code), on_output)

    def stream(self, code: str, timeout: Optional[float] = None) -> AsyncCellStream:
        return AsyncCellStream(self.client, P.streamed("run", [self.name] + P.timeout_args(timeout), code))

    async def fire(self, code: str) -> str:
        return str((await self.client._call(P.request_json("fire", [self.name], code)))["cell_id"])

    async def fork(self, code: str) -> str:
        return str((await self.client._call(P.request_json("fork", [self.name], code)))["cell_id"])

    async def poll(self, cell_id: Optional[str] = None) -> P.CellState:
        return P.CellState(await self.client._call(P.request_json("poll", [self.name] + ([cell_id] if cell_id else []))))

    async def wait(self, cell_id: str, timeout: Optional[float] = None, on_output: Optional[OutputCallback] = None) -> P.RunResult:
        return await self.client._call(P.streamed("wait", [self.name, cell_id] + P.timeout_args(timeout), None), on_output)

    async def interrupt(self) -> str:
        return await self.client._call(P.request("int", [self.name]))

    async def vars(self) -> List[str]:
        return list((await self.client._call(P.request_json("vars", [self.name])))["vars"])

    async def complete(self, text: str) -> List[str]:
        return list((await self.client._call(P.request_json("complete", [self.name], text)))["matches"])

    async def status(self) -> Dict[str, Any]:
        return dict(await self.client._call(P.request_json("status", [self.name])))

    async def kill(self) -> None:
        await self.client._call(P.request("kill", [self.name]))

    def __repr__(self) -> str:
        return "AsyncSession(%r)" % self.name
