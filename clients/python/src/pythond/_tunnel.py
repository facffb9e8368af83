"""A tunnel to one node service over its own connection to the hub (``io <node>``), synchronous.

A reader thread takes the hub's frames: acks release the sender, data and text units queue for
the caller, a text frame from the hub (``ERR node_offline: node 'x': ...``) or the connection's end
ends the tunnel with that reason. Credit goes back only for what the caller consumed (the unit
before the one it asks for next), so at most one window (4 MiB) is ever queued here whatever the
size of the output, and a slow consumer slows the command on the node.
"""
from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection

from . import _fleet as F
from . import _ops as O
from .errors import CodedReply, PythondError, from_reply

Item = Optional[Tuple[O.Msg, int]]


class Tunnel(object):
    def __init__(self, ws: ClientConnection, window: int = F.WINDOW) -> None:
        self.ws = ws
        self.window = window
        self._q: "queue.Queue[Item]" = queue.Queue()
        self._cv = threading.Condition()
        self._send_lock = threading.Lock()
        self._unacked = 0
        self._consumed = 0
        self._owed = 0  # size of the unit handed out last: credited once the next one is asked for
        self.peer_closed = False
        self.closed = False
        self.why: Optional[PythondError] = None
        threading.Thread(target=self._read, name="pythond-tunnel", daemon=True).start()

    def _read(self) -> None:
        codes = self.ws.subprotocol == "pythond.1+codes"
        try:
            while True:
                m = self.ws.recv()
                if isinstance(m, str):  # the hub speaking: the node's link went away
                    self._lost(from_reply(CodedReply(m) if codes else m) if m.startswith("ERR ") else
                               PythondError("unexpected reply in a tunnel: %s" % m[:200], "transfer_failed"))
                    return
                kind = m[0] if m else -1
                if kind == F.ACK:
                    with self._cv:
                        self._unacked = max(0, self._unacked - int(m[1:].decode() or 0))
                        self._cv.notify_all()
                elif kind == F.CLOSE:
                    reason = m[1:].decode("utf-8", "replace") or "the other side closed the connection"
                    self._lost(PythondError(reason, "transfer_failed"))
                    return
                elif kind == F.TEXT:
                    self._q.put((m[1:].decode("utf-8", "replace"), len(m) - 1))
                elif kind == F.DATA:
                    self._q.put((m[1:], len(m) - 1))
        except ConnectionClosed as e:
            from .client import close_error

            self._lost(close_error(e))
        except Exception as e:  # noqa: B902 - the tunnel ends; the caller learns why
            self._lost(PythondError("connection lost: %s" % e, "transfer_failed"))

    def _lost(self, err: PythondError) -> None:
        with self._cv:
            if self.peer_closed:
                return
            self.peer_closed = True
            self.why = err
            self._cv.notify_all()
        self._q.put(None)

    def _raw_send(self, b: bytes) -> None:
        with self._send_lock:
            try:
                self.ws.send(b)
            except ConnectionClosed as e:
                from .client import close_error

                raise close_error(e)

    def recv(self) -> Optional[O.Msg]:
        """The next message (str: a text unit, bytes: data); None once the tunnel ended (``why``)."""
        self._credit()
        item = self._q.get()
        if item is None:
            self._q.put(None)
            return None
        self._owed = item[1]
        return item[0]

    def _credit(self) -> None:
        if not self._owed:
            return
        self._consumed += self._owed
        self._owed = 0
        if F.credit_due(self._consumed, self._q.empty()) and not self.closed and not self.peer_closed:
            n, self._consumed = self._consumed, 0
            try:
                self._raw_send(F.unit(F.ACK, str(n).encode()))
            except PythondError:
                pass  # the reader learns it too and ends the tunnel

    def send(self, m: O.Msg) -> None:
        """A text (str) or data (bytes) unit; waits while a window is in flight unacknowledged."""
        if isinstance(m, str):
            kind, payload = F.TEXT, m.encode()
        else:
            kind, payload = F.DATA, bytes(m)
        with self._cv:
            while not self.peer_closed and not self.closed and self._unacked >= self.window:
                self._cv.wait()
            if self.closed:
                raise PythondError("send after close", "transfer_failed")
            if self.peer_closed:
                raise self.why or PythondError("the tunnel ended", "transfer_failed")
            self._unacked += len(payload)
        self._raw_send(F.unit(kind, payload))

    def close(self, reason: str = "") -> None:
        if self.closed:
            return
        self.closed = True
        if not self.peer_closed:
            try:
                self._raw_send(F.unit(F.CLOSE, reason.encode()))
            except PythondError:
                pass
        with self._cv:
            self._cv.notify_all()
        try:
            self.ws.close()
        except Exception:  # noqa: B902 - closing a connection that already went is fine
            pass


def open_tunnel(open_ws: Callable[[], ClientConnection], node: str, spec: Dict[str, Any],
                explain: Callable[[str], str] = lambda s: s) -> Tunnel:
    """A fresh connection to the hub, ``io <node>`` with the spec, then the tunnel (errors raise)."""
    ws = open_ws()
    try:
        ws.send(F.io_frame(node, spec))
        first = ws.recv()
        if first != F.IO_OK:
            if isinstance(first, str):
                first = explain(first)
                raise from_reply(CodedReply(first) if ws.subprotocol == "pythond.1+codes" else first)
            raise PythondError("unexpected binary reply to io", "transfer_failed")
    except ConnectionClosed as e:
        from .client import close_error

        ws.close()
        raise close_error(e)
    except BaseException:
        ws.close()
        raise
    return Tunnel(ws, int(spec.get("window") or F.WINDOW))


def steps(t: Tunnel, op: O.Op, box: List[Any]) -> Iterator[O.Action]:
    """Runs an operation on a tunnel to its end, yielding its OUT/STARTED/SKIPPED actions; the
    result lands in ``box``. The tunnel is closed however it ends (a command runs on)."""
    try:
        action = next(op)
        while True:
            if action[0] == O.SEND:
                try:
                    t.send(action[1])
                except PythondError as e:
                    action = op.throw(e)
                    continue
                action = op.send(None)
            elif action[0] == O.RECV:
                action = op.send(t.recv())
            else:
                yield action
                action = op.send(None)
    except StopIteration as e:
        box.append(e.value)
    finally:
        t.close()


def drive(t: Tunnel, op: O.Op, on_action: Optional[Callable[[O.Action], None]] = None) -> Any:
    box: List[Any] = []
    for action in steps(t, op, box):
        if on_action is not None:
            on_action(action)
    return box[0]
