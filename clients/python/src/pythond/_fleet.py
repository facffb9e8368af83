"""The fleet's records and wire pieces without I/O, shared by the sync and asyncio clients.

A hub (a daemon with ``--listen``) answers ``nodes --json``; ``io <node>`` turns a connection into a
tunnel to one node service (src/protocol/fleet-io.ts): after ``OK io`` every binary frame is one
unit, a kind byte then the payload (src/fleet/io/tunnel.ts)::

    0 data   raw bytes             1 text   UTF-8 (the services' JSON records)
    2 ack    decimal byte count    3 close  UTF-8 reason: this end is done

Data and text count against the sender's window; the receiver returns credit (an ack) every
ACK_BATCH bytes it consumed, and whenever it consumed everything that arrived and that is at
least MIN_WINDOW / 2, so a sender blocked on a full window is always released. ``fanout`` runs
``sh`` on many nodes from the hub (src/fleet/io/fanout.ts).
"""
from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Tuple

from .errors import CommandFailed, NodeOffline, PythondError, error_for, from_reply

DATA, TEXT, ACK, CLOSE = 0, 1, 2, 3
WINDOW = 4 << 20
MIN_WINDOW = 64 << 10
ACK_BATCH = 256 << 10
IO_OK = "OK io"
FANOUT_OK = "OK fanout"
#: Biggest data unit we send (as the node does): small next to everything else on the link.
PIECE = 256 << 10


def unit(kind: int, payload: bytes = b"") -> bytes:
    return bytes((kind,)) + payload


def credit_due(consumed: int, queue_empty: bool) -> bool:
    return consumed >= ACK_BATCH or (queue_empty and consumed >= MIN_WINDOW // 2)


def record(m: str) -> Dict[str, Any]:
    """A service's JSON record; ``{t:"err"}`` raises its error (with the protocol's code)."""
    try:
        r = json.loads(m)
    except ValueError:
        raise PythondError("bad record from the node: %r" % m[:200], "transfer_failed")
    if not isinstance(r, dict):
        raise PythondError("bad record from the node: %r" % m[:200], "transfer_failed")
    if r.get("t") == "err":
        raise error_for(str(r.get("code") or "io"), str(r.get("message")))
    return r


def _iso(v: Any) -> Optional[str]:
    return v if isinstance(v, str) else None


class NodeInfo(object):
    """One node of ``nodes()``: ``id``, ``state`` ("online" | "offline"), ``since`` (ISO time the
    state began), ``address``, ``hostname``, ``os``, ``arch``, ``version``, ``labels``, ``sessions``,
    ``last_heartbeat`` (ISO time or None), ``rtt_ms``."""

    __slots__ = ("id", "state", "since", "address", "hostname", "os", "arch", "version", "labels", "sessions",
                 "last_heartbeat", "rtt_ms")

    def __init__(self, d: Dict[str, Any]) -> None:
        self.id = str(d.get("id"))
        self.state = str(d.get("state"))
        self.since = _iso(d.get("since"))
        self.address = str(d.get("address") or "")
        self.hostname = str(d.get("hostname") or "")
        self.os = str(d.get("os") or "")
        self.arch = str(d.get("arch") or "")
        self.version = str(d.get("version") or "")
        labels = d.get("labels")
        self.labels: Dict[str, str] = {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}
        s = d.get("sessions")
        self.sessions: Optional[int] = int(s) if isinstance(s, (int, float)) else None
        self.last_heartbeat = _iso(d.get("last_heartbeat"))
        r = d.get("rtt_ms")
        self.rtt_ms: Optional[float] = float(r) if isinstance(r, (int, float)) else None

    @property
    def online(self) -> bool:
        return self.state == "online"

    def __repr__(self) -> str:
        return "NodeInfo(id=%r, state=%r, hostname=%r, os=%r, arch=%r, labels=%r)" % (
            self.id, self.state, self.hostname, self.os, self.arch, self.labels)


def parse_nodes(text: str) -> List[NodeInfo]:
    return [NodeInfo(d) for d in json.loads(text) if isinstance(d, dict)]


class ShResult(object):
    """How a shell command ended on a node.

    ``stdout`` / ``stderr`` are the bytes exactly as produced (``stdout_text`` / ``stderr_text`` /
    ``text`` decode them as UTF-8); ``exit_code`` is what ``pysh sh`` exits with (the command's code,
    128+n for a signal, 124 on timeout); ``code`` the raw exit code (None when killed by a signal);
    ``signal`` (``"SIGKILL"`` or None), ``timed_out``, ``killed``, ``duration_ms``; ``id`` the job id
    on the node. In ``sh_many`` each result also has ``node`` and ``status``: "ok" (exit 0),
    "failed" (other exit), "offline" (with ``since``), "error" (``error`` holds the exception) or
    "skipped"."""

    __slots__ = ("node", "id", "status", "stdout", "stderr", "exit_code", "code", "signal", "timed_out", "killed",
                 "duration_ms", "error", "since")

    def __init__(self, node: str, id: Optional[str] = None, status: str = "ok", stdout: bytes = b"",
                 stderr: bytes = b"", exit_code: Optional[int] = None, code: Optional[int] = None,
                 signal: Optional[str] = None, timed_out: bool = False, killed: bool = False,
                 duration_ms: Optional[float] = None, error: Optional[PythondError] = None,
                 since: Optional[str] = None) -> None:
        self.node, self.id, self.status = node, id, status
        self.stdout, self.stderr = stdout, stderr
        self.exit_code, self.code, self.signal = exit_code, code, signal
        self.timed_out, self.killed, self.duration_ms = timed_out, killed, duration_ms
        self.error, self.since = error, since

    @classmethod
    def from_exit(cls, node: str, job_id: Optional[str], r: Dict[str, Any], stdout: bytes = b"",
                  stderr: bytes = b"") -> "ShResult":
        exit_code = int(r.get("exit", 0))
        code = r.get("code")
        return cls(node, job_id, "ok" if exit_code == 0 else "failed", stdout, stderr, exit_code,
                   int(code) if isinstance(code, (int, float)) else None,
                   str(r["signal"]) if r.get("signal") else None, bool(r.get("timedOut")), bool(r.get("killed")),
                   float(r.get("durationMs") or 0))

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def stdout_text(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    @property
    def stderr_text(self) -> str:
        return self.stderr.decode("utf-8", "replace")

    text = stdout_text

    def describe(self) -> str:
        if self.status == "offline":
            return "offline (since %s)" % self.since
        if self.status in ("error", "skipped"):
            return str(self.error) if self.error else self.status
        if self.timed_out:
            return "timed out (exit 124; SIGTERM then SIGKILL to its process group)"
        if self.signal:
            return "killed by %s (exit %s)" % (self.signal, self.exit_code)
        return "exited %s" % self.exit_code

    def check(self) -> "ShResult":
        """Raises :class:`CommandFailed` (``.result`` is this) unless the command exited 0."""
        if self.error is not None:
            raise self.error
        if self.exit_code != 0:
            tail = self.stderr_text[-2000:]
            raise CommandFailed("command on '%s' %s%s" % (self.node, self.describe(), (":\n" + tail) if tail else ""),
                                self)
        return self

    def __repr__(self) -> str:
        return "ShResult(node=%r, id=%r, status=%r, exit_code=%r, signal=%r, timed_out=%r, stdout=%r, stderr=%r)" % (
            self.node, self.id, self.status, self.exit_code, self.signal, self.timed_out, self.stdout[:200],
            self.stderr[:200])


class JobInfo(dict):  # type: ignore[type-arg]
    """A job on a node as ``jobs()`` lists it (the node's record: ``id``, ``command``, ``pid``,
    ``state`` "running" | "exited", ``durationMs``, ``stdoutBytes``, ``result``...)."""

    @property
    def id(self) -> str:
        return str(self.get("id"))

    @property
    def state(self) -> str:
        return str(self.get("state"))

    @property
    def running(self) -> bool:
        return self.get("state") == "running"


def sh_spec(command: str, cwd: Optional[str], env: Optional[Dict[str, str]], timeout: Optional[float],
            stdin: bool, detach: bool = False) -> Dict[str, Any]:
    if not isinstance(command, str) or command == "":
        raise error_for("usage", "sh needs a command (a non-empty string, run by the node user's shell)")
    spec: Dict[str, Any] = {"kind": "sh", "command": command}
    if cwd is not None:
        spec["cwd"] = cwd
    if env:
        spec["env"] = {str(k): str(v) for k, v in env.items()}
    if timeout is not None:
        if not timeout > 0:
            raise error_for("usage", "timeout is a number of seconds > 0 (got %r)" % (timeout,))
        spec["timeoutMs"] = int(round(timeout * 1000))
    if stdin:
        spec["stdin"] = True
    if detach:
        spec["detach"] = True
    return spec


def check_node(node: str) -> str:
    """A node id fits in a frame's first line as one word; whether it exists is the hub's to say."""
    if not isinstance(node, str) or not node or any(c.isspace() or ord(c) < 32 for c in node) or "/" in node:
        raise error_for("invalid_name", "invalid node id %r (letters, digits, '.', '_', '-'; at most 63)" % (node,))
    return node


def io_frame(node: str, spec: Dict[str, Any]) -> str:
    return "io %s\n%s" % (check_node(node), json.dumps(spec))


def fanout_frame(selector: Optional[str], spec: Dict[str, Any], max_concurrency: Optional[int],
                 fail_fast: bool) -> str:
    args = ["--all"] if selector is None else ["--selector", selector]
    if max_concurrency is not None:
        if not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise error_for("usage", "max_concurrency is a whole number >= 1 (got %r)" % (max_concurrency,))
        args += ["--max-concurrency", str(max_concurrency)]
    if fail_fast:
        args.append("--fail-fast")
    return "fanout %s\n%s" % (" ".join(args), json.dumps(spec))


def check_selector(selector: str) -> str:
    if any(c.isspace() for c in selector) or selector == "":
        raise error_for("usage", "invalid selector %r: write it as k=v[,k=v] (no spaces)" % (selector,))
    return selector


def lost_message(node: str, job_id: Optional[str], why: str) -> str:
    if job_id is None:
        return "lost the link to node '%s' before the command started: %s" % (node, why)
    return ("lost the link to node '%s' during the command: it is still running there (job %s); its output so far "
            "and the rest: client.job(%r, %r, wait=True) (pysh job %s %s --wait) -- %s" % (
                node, job_id, node, job_id, node, job_id, why))


class Fanout(object):
    """The client's side of ``fanout``: fed each message after ``OK fanout``, returns a node's
    ShResult when one ends; ``over`` once the final OK / ERR came."""

    def __init__(self) -> None:
        self.ids: List[str] = []
        self.out: Dict[int, Tuple[List[bytes], List[bytes]]] = {}
        self.index: Dict[str, int] = {}
        self.over = False

    def feed(self, m: Any) -> Optional[ShResult]:
        if isinstance(m, (bytes, bytearray)):
            i = int.from_bytes(bytes(m[:4]), "big")
            self.out.setdefault(i, ([], []))[1 if m[4] == 2 else 0].append(bytes(m[5:]))
            return None
        if m == "OK" or m.startswith("ERR "):
            self.over = True
            if m.startswith("ERR ") and "some nodes failed" not in m:
                raise from_reply(m)
            return None
        r = json.loads(m)
        t = r.get("t")
        if t == "nodes":
            self.ids = [str(x) for x in r.get("nodes", [])]
            self.index = {n: i for i, n in enumerate(self.ids)}
            return None
        node = str(r.get("node"))
        out, err = self.out.pop(self.index.get(node, -1), ([], []))
        if t == "exit":
            return ShResult.from_exit(node, None, r, b"".join(out), b"".join(err))
        if t == "offline":
            since = _iso(r.get("since"))
            return ShResult(node, None, "offline", error=NodeOffline("node '%s' is offline (since %s)" % (node, since)),
                            since=since)
        if t == "skipped":
            return ShResult(node, None, "skipped",
                            error=PythondError("not started on '%s': an earlier node failed (fail_fast)" % node, "busy"))
        return ShResult(node, None, "error", error=error_for(str(r.get("code") or "io"), str(r.get("message"))))
