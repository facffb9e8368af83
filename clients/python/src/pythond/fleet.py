"""The fleet calls of :class:`pythond.Client`: nodes of a hub, shell commands, jobs, files.

Each command or transfer runs in a tunnel on a connection of its own (``io <node>``), so several
may run at once from one client (threads), and none holds up the client's session calls.
"""
from __future__ import annotations

import concurrent.futures as cf
import threading
import time
from typing import (TYPE_CHECKING, Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, TypeVar,
                    Union)

from websockets.exceptions import ConnectionClosed

from . import _fleet as F
from ._files_receive import receive_tree
from ._files_send import send_tree
from . import _ops as O
from . import _proto as P
from ._tunnel import Tunnel, drive, open_tunnel, steps
from .errors import (CodedReply, NodeLost, NodeOffline, NoSuchNode, PythondError, Timeout, UsageError,
                     from_reply)

if TYPE_CHECKING:
    from websockets.sync.client import ClientConnection

    from . import _endpoint as E

T = TypeVar("T")
Sink = Callable[[bytes], None]
#: bytes (or str, sent as UTF-8), a binary file, an iterable of bytes (async: or an async iterable)
Stdin = Union[bytes, bytearray, str, Iterable[bytes], Any, None]
Selector = Union[str, Sequence[str], None]
#: Polling ``nodes`` while waiting for a node: the hub has no notification for it.
POLL_FIRST_S, POLL_MAX_S = 0.05, 0.5


def _stdin_chunks(stdin: Stdin) -> Iterator[bytes]:
    if isinstance(stdin, str):
        stdin = stdin.encode()
    if isinstance(stdin, (bytes, bytearray, memoryview)):
        data = bytes(stdin)
        for at in range(0, len(data), F.PIECE):
            yield data[at:at + F.PIECE]
    elif hasattr(stdin, "read"):
        read = getattr(stdin, "read")
        for b in iter(lambda: read(F.PIECE), b""):
            yield bytes(b)
    else:
        for b in stdin:  # type: ignore[union-attr]
            yield bytes(b)


def _feed(t: Tunnel, stdin: Stdin) -> None:
    try:
        for chunk in _stdin_chunks(stdin):
            t.send(chunk)
        t.send(O.eof())
    except PythondError:
        pass  # the command exited without reading all of it: dropped, as a pipe would


def no_node_message(node: str, nodes: List[F.NodeInfo]) -> str:
    ids = [n.id for n in nodes]
    if not ids:
        return "no node '%s' -- no node has joined this hub (pyctl join-token)" % node
    return "no node '%s' -- nodes: %s" % (node, ", ".join(ids[:20]) + (", ..." if len(ids) > 20 else ""))


def wait_message(node: str, timeout: float, info: Optional[F.NodeInfo], nodes: List[F.NodeInfo]) -> str:
    if info is None:
        return ("node '%s' did not come online within %gs: no node of that id has joined this hub (%s); on the "
                "machine run the line `pyctl join-token` prints, with --id %s" % (
                    node, timeout, "nodes: " + ", ".join(n.id for n in nodes) if nodes else "no nodes yet", node))
    return "node '%s' did not come online within %gs: it is offline (since %s)" % (node, timeout, info.since)


class ShStream(object):
    """``for fd, data in c.sh_stream(node, cmd)``: output as produced (fd 1 or 2, bytes); then
    ``.result`` (an ShResult without the output kept) and ``.id`` (the job id, once started)."""

    def __init__(self, client: "FleetMixin", node: str, spec: Dict[str, Any], stdin: Stdin) -> None:
        self._client, self._node, self._spec, self._stdin = client, node, spec, stdin
        self.result: Optional[F.ShResult] = None
        self.id: Optional[str] = None
        self.pid: Optional[int] = None

    def __iter__(self) -> Iterator[Tuple[int, bytes]]:
        t = self._client._tunnel(self._node, self._spec)
        box: List[Any] = []
        try:
            for a in steps(t, O.sh_op(), box):
                if a[0] == O.STARTED:
                    self.id, self.pid = a[1], a[2]
                    if self._stdin is not None:
                        threading.Thread(target=_feed, args=(t, self._stdin), daemon=True).start()
                elif a[0] == O.OUT:
                    yield a[1], a[2]
        except O.Lost as e:
            raise _lost(self._node, e, t)
        job_id, end = box[0]
        self.result = F.ShResult.from_exit(self._node, job_id, end)


def _lost(node: str, e: O.Lost, t: Tunnel) -> PythondError:
    why = str(t.why) if t.why else "the tunnel ended"
    if e.job_id is None and t.why is not None and not isinstance(t.why, NodeOffline):
        return t.why
    return NodeLost(F.lost_message(node, e.job_id, why), node, e.job_id)


class FleetMixin(object):
    """Node calls for a client of a hub (a daemon started with ``--listen``)."""

    if TYPE_CHECKING:
        endpoint: E.Endpoint

        def _call(self, op: "P.Op[T]", on_output: Optional[Callable[[str], None]] = None) -> T: ...

        def _open_ws(self) -> ClientConnection: ...

    def _tunnel(self, node: str, spec: Dict[str, Any]) -> Tunnel:
        from . import _endpoint as E

        F.check_node(node)
        return open_tunnel(self._open_ws, node, spec, lambda s: E.explain_rejection(self.endpoint, s))

    # -- nodes -----------------------------------------------------------------------------------
    def nodes(self) -> List[F.NodeInfo]:
        """The hub's nodes (``pysh nodes``): online and offline, each a :class:`NodeInfo`."""
        return F.parse_nodes(self._call(P.request("nodes", ["--json"])))

    def node(self, node: str) -> F.NodeInfo:
        """One node's record; :class:`NoSuchNode` (``no node 'x' -- nodes: a, b``) if the hub has none."""
        nodes = self.nodes()
        for n in nodes:
            if n.id == node:
                return n
        raise NoSuchNode(no_node_message(node, nodes))

    def wait_for_node(self, node: str, timeout: Optional[float] = 30) -> F.NodeInfo:
        """Returns once ``node`` is online (its record); raises :class:`Timeout` after ``timeout`` s
        saying whether it is unknown or offline. ``None`` waits for ever. The hub has no
        notification for this: ``nodes`` is asked every 50 ms at first, then every 0.5 s."""
        F.check_node(node)
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = POLL_FIRST_S
        while True:
            nodes = self.nodes()
            info = next((n for n in nodes if n.id == node), None)
            if info is not None and info.online:
                return info
            if deadline is not None and time.monotonic() >= deadline:
                raise Timeout(wait_message(node, float(timeout or 0), info, nodes))
            time.sleep(delay if deadline is None else max(0.0, min(delay, deadline - time.monotonic())))
            delay = min(delay * 2, POLL_MAX_S)

    # -- shell commands --------------------------------------------------------------------------
    def sh(self, node: str, command: str, timeout: Optional[float] = None, cwd: Optional[str] = None,
           env: Optional[Dict[str, str]] = None, stdin: Stdin = None, on_stdout: Optional[Sink] = None,
           on_stderr: Optional[Sink] = None) -> F.ShResult:
        """Runs ``command`` with the node user's ``$SHELL -c`` (in ``cwd``, with ``env`` added) and
        returns its :class:`ShResult` (bytes exact). ``timeout``: SIGTERM to its process group, SIGKILL
        3 s later, ``exit_code`` 124 and ``timed_out``. ``stdin``: bytes, a binary file or an iterable of
        bytes. With ``on_stdout`` / ``on_stderr`` output goes there as produced and is not kept in the
        result (memory stays bounded). Raises :class:`NoSuchNode`, :class:`NodeOffline`, or
        :class:`NodeLost` (with ``job_id``: the command runs on) when the link goes mid-command."""
        spec = F.sh_spec(command, cwd, env, timeout, stdin is not None)
        out: List[bytes] = []
        err: List[bytes] = []
        sinks = {1: on_stdout or out.append, 2: on_stderr or err.append}
        s = ShStream(self, node, spec, stdin)
        for fd, data in s:
            sinks[fd](data)
        assert s.result is not None
        s.result.stdout, s.result.stderr = b"".join(out), b"".join(err)
        return s.result

    def sh_stream(self, node: str, command: str, timeout: Optional[float] = None, cwd: Optional[str] = None,
                  env: Optional[Dict[str, str]] = None, stdin: Stdin = None) -> ShStream:
        """``for fd, data in c.sh_stream(node, cmd): ...`` then ``.result`` (see :meth:`sh`)."""
        return ShStream(self, node, F.sh_spec(command, cwd, env, timeout, stdin is not None), stdin)

    def sh_detached(self, node: str, command: str, timeout: Optional[float] = None, cwd: Optional[str] = None,
                    env: Optional[Dict[str, str]] = None) -> str:
        """Starts ``command`` and returns its job id at once (``pysh sh --detach``)."""
        spec = F.sh_spec(command, cwd, env, timeout, False, detach=True)
        return str(drive(self._tunnel(node, spec), O.detached_op())[0])

    def jobs(self, node: str) -> List[F.JobInfo]:
        """The node's jobs (running, and finished ones kept for a while)."""
        r = drive(self._tunnel(node, {"kind": "job", "action": "list"}), O.job_op())
        return [F.JobInfo(j) for j in r.get("jobs", [])]

    def job(self, node: str, job_id: str, wait: bool = False, kill: bool = False,
            on_stdout: Optional[Sink] = None, on_stderr: Optional[Sink] = None) -> F.ShResult:
        """A job's kept output and state (``pysh job``): ``status`` "running" (``exit_code`` None) or its
        result. ``wait=True`` streams the output until it ends; ``kill=True`` ends it first (SIGTERM,
        SIGKILL 3 s later, to its whole group). The node keeps the last 8 MiB of each stream."""
        if wait and kill:
            raise UsageError("job: wait or kill, not both")
        action = "kill" if kill else "wait" if wait else "info"
        out: List[bytes] = []
        err: List[bytes] = []
        sinks = {1: on_stdout or out.append, 2: on_stderr or err.append}

        def on(a: O.Action) -> None:
            if a[0] == O.OUT:
                sinks[a[1]](a[2])

        t = self._tunnel(node, {"kind": "job", "action": action, "id": job_id})
        try:
            end = drive(t, O.job_op(), on)
        except O.Lost as e:
            raise _lost(node, O.Lost(job_id, e.offsets), t)
        if end.get("t") == "info":
            info = end.get("job") or {}
            r = info.get("result")
            if r:
                res = F.ShResult.from_exit(node, job_id, r)
            else:
                res = F.ShResult(node, job_id, "running", duration_ms=float(info.get("durationMs") or 0))
        else:
            res = F.ShResult.from_exit(node, str(end.get("id") or job_id), end)
        res.stdout, res.stderr = b"".join(out), b"".join(err)
        return res

    # -- many nodes ------------------------------------------------------------------------------
    def sh_many(self, selector: Selector, command: str, max_concurrency: Optional[int] = None,
                timeout: Optional[float] = None, cwd: Optional[str] = None, env: Optional[Dict[str, str]] = None,
                fail_fast: bool = False) -> Iterator[F.ShResult]:
        """Runs ``command`` on many nodes, yielding each node's :class:`ShResult` as it finishes.

        ``selector``: a label selector ``"role=web,env=prod"``, ``None`` or ``"*"`` for every node (both
        run from the hub with its ``fanout``, one connection whatever the count; at most
        ``max_concurrency`` at once, default 256), or a list of node ids (a tunnel per node from here,
        default 32 at once). Offline matching nodes are yielded with ``status`` "offline", never
        skipped; ``fail_fast`` (fan-out only) stops starting nodes after the first failure."""
        spec = F.sh_spec(command, cwd, env, timeout, False)
        if selector is None or selector == "*" or isinstance(selector, str):
            sel = None if selector in (None, "*") else F.check_selector(str(selector))
            return self._fanout(F.fanout_frame(sel, spec, max_concurrency, fail_fast))
        ids = [F.check_node(n) for n in selector]
        if not ids:
            raise UsageError("sh_many: an empty list of nodes")
        nodes = self.nodes()
        known = {n.id: n for n in nodes}
        for n in ids:
            if n not in known:
                raise NoSuchNode(no_node_message(n, nodes))
        return self._sh_each(ids, known, command, timeout, cwd, env, max_concurrency or 32)

    def _fanout(self, frame: str) -> Iterator[F.ShResult]:
        ws = self._open_ws()
        codes = ws.subprotocol == "pythond.1+codes"

        def recv() -> Union[str, bytes]:
            try:
                return ws.recv()
            except ConnectionClosed as e:
                from .client import close_error

                raise close_error(e, self.endpoint)

        try:
            ws.send(frame)
            first = recv()
            if first != F.FANOUT_OK:
                raise from_reply(CodedReply(first) if codes else str(first)) if isinstance(first, str) and \
                    first.startswith("ERR ") else PythondError("unexpected reply to fanout: %r" % (first,))
        except BaseException:
            ws.close()
            raise
        return self._fanout_results(ws, recv)

    @staticmethod
    def _fanout_results(ws: "ClientConnection", recv: Callable[[], Union[str, bytes]]) -> Iterator[F.ShResult]:
        try:
            fan = F.Fanout()
            while True:
                m = recv()
                r = fan.feed(m)
                if r is not None:
                    yield r
                if fan.over:
                    return
        finally:
            ws.close()  # abandoned early: the hub lets the commands run on

    def _sh_each(self, ids: List[str], known: Dict[str, F.NodeInfo], command: str, timeout: Optional[float],
                 cwd: Optional[str], env: Optional[Dict[str, str]], workers: int) -> Iterator[F.ShResult]:
        def one(node: str) -> F.ShResult:
            try:
                return self.sh(node, command, timeout=timeout, cwd=cwd, env=env)
            except NodeLost as e:
                return F.ShResult(node, e.job_id, "error", error=e)
            except NodeOffline as e:
                return F.ShResult(node, None, "offline", error=e, since=known[node].since)
            except PythondError as e:
                return F.ShResult(node, None, "error", error=e)

        pool = cf.ThreadPoolExecutor(max_workers=max(1, min(workers, len(ids))), thread_name_prefix="pythond-sh")
        try:
            for f in cf.as_completed([pool.submit(one, n) for n in ids]):
                yield f.result()
        finally:
            pool.shutdown(wait=False)

    # -- files -----------------------------------------------------------------------------------
    def put(self, node: str, local: Any, remote: str, recursive: bool = False, resume: bool = True,
            progress: Optional[Callable[[str, int, Optional[int]], None]] = None) -> Dict[str, Any]:
        """Copies ``local`` (a path; a directory with ``recursive``; or bytes / a readable binary file) to
        ``remote`` on the node (relative to the node user's home; into an existing directory under
        the source's name, as cp). SHA-256 checked, renamed into place, modes kept; an interrupted
        copy resumes from its part file. Returns {target, files, bytes, resumed}."""
        t = self._tunnel(node, {"kind": "put", "dest": remote, "resume": bool(resume)})
        return dict(drive(t, send_tree(local, recursive, progress)))

    def get(self, node: str, remote: str, local: Any, recursive: bool = False, resume: bool = True,
            progress: Optional[Callable[[str, int, Optional[int]], None]] = None) -> Dict[str, Any]:
        """Copies ``remote`` from the node to ``local`` (a path, or a writable binary file for one
        file), as :meth:`put` does the other way. Returns {target, files, bytes, resumed, resumed_files}."""
        t = self._tunnel(node, {"kind": "get", "src": remote, "recursive": bool(recursive)})
        return dict(drive(t, receive_tree(local, resume, progress)))

    def read_file(self, node: str, remote: str) -> bytes:
        """A file of the node, in memory (for small files; use :meth:`get` for big ones)."""
        import io

        buf = io.BytesIO()
        self.get(node, remote, buf)
        return buf.getvalue()

    def write_file(self, node: str, remote: str, data: Union[bytes, str]) -> Dict[str, Any]:
        """Writes ``data`` (str as UTF-8) to ``remote`` on the node."""
        return self.put(node, data.encode() if isinstance(data, str) else data, remote)


__all__ = ["FleetMixin", "ShStream"]
