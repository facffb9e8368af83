"""The fleet calls of :class:`pythond.AsyncClient`: the same operations as pythond.fleet, for asyncio.

A tunnel is a connection of its own with a reader task (acks release the sender; data queues for
the caller and is credited once consumed), so memory stays within one window per tunnel. Local
file reads and writes of ``put``/``get`` happen on the event loop's thread, a chunk at a time.
"""
from __future__ import annotations

import asyncio
import time
from typing import (TYPE_CHECKING, Any, AsyncIterator, Callable, Dict, List, Optional, Tuple, TypeVar, Union)

from websockets.exceptions import ConnectionClosed

from . import _fleet as F
from ._files_receive import receive_tree
from ._files_send import send_tree
from . import _ops as O
from . import _proto as P
from .errors import CodedReply, NodeLost, NodeOffline, NoSuchNode, PythondError, Timeout, UsageError, from_reply
from .fleet import POLL_FIRST_S, POLL_MAX_S, Selector, Sink, Stdin, _stdin_chunks, no_node_message, wait_message

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

    from . import _endpoint as E

T = TypeVar("T")
Item = Optional[Tuple[O.Msg, int]]


class AsyncTunnel(object):
    def __init__(self, ws: "ClientConnection", window: int = F.WINDOW) -> None:
        self.ws = ws
        self.window = window
        self._q: "asyncio.Queue[Item]" = asyncio.Queue()
        self._credit_ev = asyncio.Event()
        self._send_lock = asyncio.Lock()
        self._unacked = 0
        self._consumed = 0
        self._owed = 0
        self.peer_closed = False
        self.closed = False
        self.why: Optional[PythondError] = None
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        codes = self.ws.subprotocol == "pythond.1+codes"
        try:
            while True:
                m = await self.ws.recv()
                if isinstance(m, str):
                    self._lost(from_reply(CodedReply(m) if codes else m) if m.startswith("ERR ") else
                               PythondError("unexpected reply in a tunnel: %s" % m[:200], "transfer_failed"))
                    return
                kind = m[0] if m else -1
                if kind == F.ACK:
                    self._unacked = max(0, self._unacked - int(m[1:].decode() or 0))
                    self._credit_ev.set()
                elif kind == F.CLOSE:
                    self._lost(PythondError(m[1:].decode("utf-8", "replace") or "the other side closed the connection",
                                            "transfer_failed"))
                    return
                elif kind == F.TEXT:
                    self._q.put_nowait((m[1:].decode("utf-8", "replace"), len(m) - 1))
                elif kind == F.DATA:
                    self._q.put_nowait((m[1:], len(m) - 1))
        except ConnectionClosed as e:
            from .client import close_error

            self._lost(close_error(e))
        except asyncio.CancelledError:
            self._lost(PythondError("the tunnel was closed", "transfer_failed"))
        except Exception as e:  # noqa: B902 - the tunnel ends; the caller learns why
            self._lost(PythondError("connection lost: %s" % e, "transfer_failed"))

    def _lost(self, err: PythondError) -> None:
        if self.peer_closed:
            return
        self.peer_closed = True
        self.why = err
        self._credit_ev.set()
        self._q.put_nowait(None)

    async def _raw_send(self, b: bytes) -> None:
        async with self._send_lock:
            try:
                await self.ws.send(b)
            except ConnectionClosed as e:
                from .client import close_error

                raise close_error(e)

    async def recv(self) -> Optional[O.Msg]:
        if self._owed:
            self._consumed += self._owed
            self._owed = 0
            if F.credit_due(self._consumed, self._q.empty()) and not self.closed and not self.peer_closed:
                n, self._consumed = self._consumed, 0
                try:
                    await self._raw_send(F.unit(F.ACK, str(n).encode()))
                except PythondError:
                    pass
        item = await self._q.get()
        if item is None:
            self._q.put_nowait(None)
            return None
        self._owed = item[1]
        return item[0]

    async def send(self, m: O.Msg) -> None:
        kind, payload = (F.TEXT, m.encode()) if isinstance(m, str) else (F.DATA, bytes(m))
        while not self.peer_closed and not self.closed and self._unacked >= self.window:
            self._credit_ev.clear()
            await self._credit_ev.wait()
        if self.closed:
            raise PythondError("send after close", "transfer_failed")
        if self.peer_closed:
            raise self.why or PythondError("the tunnel ended", "transfer_failed")
        self._unacked += len(payload)
        await self._raw_send(F.unit(kind, payload))

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._credit_ev.set()
        if not self.peer_closed:
            try:
                await self._raw_send(F.unit(F.CLOSE))
            except PythondError:
                pass
        try:
            await self.ws.close()
        except Exception:  # noqa: B902
            pass
        self._reader.cancel()


async def asteps(t: AsyncTunnel, op: O.Op, box: List[Any]) -> AsyncIterator[O.Action]:
    try:
        action = next(op)
        while True:
            if action[0] == O.SEND:
                try:
                    await t.send(action[1])
                except PythondError as e:
                    action = op.throw(e)
                    continue
                action = op.send(None)
            elif action[0] == O.RECV:
                action = op.send(await t.recv())
            else:
                yield action
                action = op.send(None)
    except StopIteration as e:
        box.append(e.value)
    finally:
        await t.close()


async def adrive(t: AsyncTunnel, op: O.Op, on_action: Optional[Callable[[O.Action], None]] = None) -> Any:
    box: List[Any] = []
    async for action in asteps(t, op, box):
        if on_action is not None:
            on_action(action)
    return box[0]


async def _afeed(t: AsyncTunnel, stdin: Stdin) -> None:
    try:
        if hasattr(stdin, "__aiter__"):
            async for b in stdin:  # type: ignore[union-attr]
                await t.send(bytes(b))
        else:
            for chunk in _stdin_chunks(stdin):
                await t.send(chunk)
        await t.send(O.eof())
    except PythondError:
        pass


def _alost(node: str, e: O.Lost, t: AsyncTunnel) -> PythondError:
    why = str(t.why) if t.why else "the tunnel ended"
    if e.job_id is None and t.why is not None and not isinstance(t.why, NodeOffline):
        return t.why
    return NodeLost(F.lost_message(node, e.job_id, why), node, e.job_id)


class AsyncShStream(object):
    """``async for fd, data in c.sh_stream(node, cmd)``; then ``.result`` and ``.id``."""

    def __init__(self, client: "AsyncFleetMixin", node: str, spec: Dict[str, Any], stdin: Stdin) -> None:
        self._client, self._node, self._spec, self._stdin = client, node, spec, stdin
        self.result: Optional[F.ShResult] = None
        self.id: Optional[str] = None
        self.pid: Optional[int] = None

    async def __aiter__(self) -> AsyncIterator[Tuple[int, bytes]]:
        t = await self._client._tunnel(self._node, self._spec)
        box: List[Any] = []
        feeder: Optional["asyncio.Future[None]"] = None
        try:
            async for a in asteps(t, O.sh_op(), box):
                if a[0] == O.STARTED:
                    self.id, self.pid = a[1], a[2]
                    if self._stdin is not None:
                        feeder = asyncio.ensure_future(_afeed(t, self._stdin))
                elif a[0] == O.OUT:
                    yield a[1], a[2]
        except O.Lost as e:
            raise _alost(self._node, e, t)
        finally:
            if feeder is not None and not feeder.done():
                feeder.cancel()
        job_id, end = box[0]
        self.result = F.ShResult.from_exit(self._node, job_id, end)


class AsyncFleetMixin(object):
    """Node calls for an asyncio client of a hub (see :class:`pythond.fleet.FleetMixin`)."""

    if TYPE_CHECKING:
        endpoint: E.Endpoint

        async def _call(self, op: "P.Op[T]", on_output: Optional[Callable[[str], None]] = None) -> T: ...

        async def _open_ws(self) -> ClientConnection: ...

    async def _tunnel(self, node: str, spec: Dict[str, Any]) -> AsyncTunnel:
        from . import _endpoint as E

        F.check_node(node)
        ws = await self._open_ws()
        try:
            await ws.send(F.io_frame(node, spec))
            first = await ws.recv()
            if first != F.IO_OK:
                if isinstance(first, str):
                    first = E.explain_rejection(self.endpoint, first)
                    raise from_reply(CodedReply(first) if ws.subprotocol == "pythond.1+codes" else first)
                raise PythondError("unexpected binary reply to io", "transfer_failed")
        except ConnectionClosed as e:
            from .client import close_error

            await ws.close()
            raise close_error(e)
        except BaseException:
            await ws.close()
            raise
        return AsyncTunnel(ws, int(spec.get("window") or F.WINDOW))

    async def nodes(self) -> List[F.NodeInfo]:
        return F.parse_nodes(await self._call(P.request("nodes", ["--json"])))

    async def node(self, node: str) -> F.NodeInfo:
        nodes = await self.nodes()
        for n in nodes:
            if n.id == node:
                return n
        raise NoSuchNode(no_node_message(node, nodes))

    async def wait_for_node(self, node: str, timeout: Optional[float] = 30) -> F.NodeInfo:
        F.check_node(node)
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = POLL_FIRST_S
        while True:
            nodes = await self.nodes()
            info = next((n for n in nodes if n.id == node), None)
            if info is not None and info.online:
                return info
            if deadline is not None and time.monotonic() >= deadline:
                raise Timeout(wait_message(node, float(timeout or 0), info, nodes))
            await asyncio.sleep(delay if deadline is None else max(0.0, min(delay, deadline - time.monotonic())))
            delay = min(delay * 2, POLL_MAX_S)

    async def sh(self, node: str, command: str, timeout: Optional[float] = None, cwd: Optional[str] = None,
                 env: Optional[Dict[str, str]] = None, stdin: Stdin = None, on_stdout: Optional[Sink] = None,
                 on_stderr: Optional[Sink] = None) -> F.ShResult:
        out: List[bytes] = []
        err: List[bytes] = []
        sinks = {1: on_stdout or out.append, 2: on_stderr or err.append}
        s = AsyncShStream(self, node, F.sh_spec(command, cwd, env, timeout, stdin is not None), stdin)
        async for fd, data in s:
            sinks[fd](data)
        assert s.result is not None
        s.result.stdout, s.result.stderr = b"".join(out), b"".join(err)
        return s.result

    def sh_stream(self, node: str, command: str, timeout: Optional[float] = None, cwd: Optional[str] = None,
                  env: Optional[Dict[str, str]] = None, stdin: Stdin = None) -> AsyncShStream:
        return AsyncShStream(self, node, F.sh_spec(command, cwd, env, timeout, stdin is not None), stdin)

    async def sh_detached(self, node: str, command: str, timeout: Optional[float] = None, cwd: Optional[str] = None,
                          env: Optional[Dict[str, str]] = None) -> str:
        spec = F.sh_spec(command, cwd, env, timeout, False, detach=True)
        return str((await adrive(await self._tunnel(node, spec), O.detached_op()))[0])

    async def jobs(self, node: str) -> List[F.JobInfo]:
        r = await adrive(await self._tunnel(node, {"kind": "job", "action": "list"}), O.job_op())
        return [F.JobInfo(j) for j in r.get("jobs", [])]

    async def job(self, node: str, job_id: str, wait: bool = False, kill: bool = False,
                  on_stdout: Optional[Sink] = None, on_stderr: Optional[Sink] = None) -> F.ShResult:
        if wait and kill:
            raise UsageError("job: wait or kill, not both")
        action = "kill" if kill else "wait" if wait else "info"
        out: List[bytes] = []
        err: List[bytes] = []
        sinks = {1: on_stdout or out.append, 2: on_stderr or err.append}

        def on(a: O.Action) -> None:
            if a[0] == O.OUT:
                sinks[a[1]](a[2])

        t = await self._tunnel(node, {"kind": "job", "action": action, "id": job_id})
        try:
            end = await adrive(t, O.job_op(), on)
        except O.Lost as e:
            raise _alost(node, O.Lost(job_id, e.offsets), t)
        if end.get("t") == "info":
            info = end.get("job") or {}
            r = info.get("result")
            res = F.ShResult.from_exit(node, job_id, r) if r else F.ShResult(
                node, job_id, "running", duration_ms=float(info.get("durationMs") or 0))
        else:
            res = F.ShResult.from_exit(node, str(end.get("id") or job_id), end)
        res.stdout, res.stderr = b"".join(out), b"".join(err)
        return res

    async def sh_many(self, selector: Selector, command: str, max_concurrency: Optional[int] = None,
                      timeout: Optional[float] = None, cwd: Optional[str] = None,
                      env: Optional[Dict[str, str]] = None, fail_fast: bool = False) -> AsyncIterator[F.ShResult]:
        """``async for r in c.sh_many("role=web", cmd)`` (see :meth:`pythond.Client.sh_many`)."""
        spec = F.sh_spec(command, cwd, env, timeout, False)
        if selector is None or isinstance(selector, str):
            sel = None if selector in (None, "*") else F.check_selector(str(selector))
            async for r in self._fanout(F.fanout_frame(sel, spec, max_concurrency, fail_fast)):
                yield r
            return
        ids = [F.check_node(n) for n in selector]
        if not ids:
            raise UsageError("sh_many: an empty list of nodes")
        nodes = await self.nodes()
        known = {n.id: n for n in nodes}
        for n in ids:
            if n not in known:
                raise NoSuchNode(no_node_message(n, nodes))
        gate = asyncio.Semaphore(max_concurrency or 32)

        async def one(node: str) -> F.ShResult:
            async with gate:
                try:
                    return await self.sh(node, command, timeout=timeout, cwd=cwd, env=env)
                except NodeLost as e:
                    return F.ShResult(node, e.job_id, "error", error=e)
                except NodeOffline as e:
                    return F.ShResult(node, None, "offline", error=e, since=known[node].since)
                except PythondError as e:
                    return F.ShResult(node, None, "error", error=e)

        for f in asyncio.as_completed([one(n) for n in ids]):
            yield await f

    async def _fanout(self, frame: str) -> AsyncIterator[F.ShResult]:
        ws = await self._open_ws()
        codes = ws.subprotocol == "pythond.1+codes"
        try:
            await ws.send(frame)
            first = await ws.recv()
            if first != F.FANOUT_OK:
                if isinstance(first, str) and first.startswith("ERR "):
                    raise from_reply(CodedReply(first) if codes else first)
                raise PythondError("unexpected reply to fanout: %r" % (first,))
            fan = F.Fanout()
            while not fan.over:
                r = fan.feed(await ws.recv())
                if r is not None:
                    yield r
        except ConnectionClosed as e:
            from .client import close_error

            raise close_error(e, self.endpoint)
        finally:
            await ws.close()

    async def put(self, node: str, local: Any, remote: str, recursive: bool = False, resume: bool = True,
                  progress: Optional[Callable[[str, int, Optional[int]], None]] = None) -> Dict[str, Any]:
        t = await self._tunnel(node, {"kind": "put", "dest": remote, "resume": bool(resume)})
        return dict(await adrive(t, send_tree(local, recursive, progress)))

    async def get(self, node: str, remote: str, local: Any, recursive: bool = False, resume: bool = True,
                  progress: Optional[Callable[[str, int, Optional[int]], None]] = None) -> Dict[str, Any]:
        t = await self._tunnel(node, {"kind": "get", "src": remote, "recursive": bool(recursive)})
        return dict(await adrive(t, receive_tree(local, resume, progress)))

    async def read_file(self, node: str, remote: str) -> bytes:
        import io

        buf = io.BytesIO()
        await self.get(node, remote, buf)
        return buf.getvalue()

    async def write_file(self, node: str, remote: str, data: Union[bytes, str]) -> Dict[str, Any]:
        return await self.put(node, data.encode() if isinstance(data, str) else data, remote)


__all__ = ["AsyncFleetMixin", "AsyncShStream", "AsyncTunnel"]
