"""A sandd-compatible façade: a program written for sandd's Python API runs unchanged on a hub.

    from sandd import Server            # or: from pythond.sandd import Server

    server = Server(host="0.0.0.0", port=8765)
    print(f"Server listening on {server.address}")
    server.wait_for_daemon("worker-1", timeout=30)
    result = server.execute_command("worker-1", "hostname")
    print(f"Output: {result.stdout}")

``Server(host, port)`` is a pythond hub: a daemon with ``--listen host:port``. When a daemon already
runs here (the local socket, as pysh finds it) and listens on that port, it is used as it is. When
none runs, ``pythond daemon --listen host:port --tls`` is started from PATH (or ``binary=``, or
``$PYTHOND_BIN``) as a child of this program and stopped by ``close()`` or at exit (its sessions
and the nodes' enrollment live on in ``~/.pythond``; nodes redial when it comes back). A daemon
that runs without that listener is an error saying what to run. Machines join with the line
``server.join_command()`` returns (a join token and the hub's TLS fingerprint), run there once.
"""
from __future__ import annotations

import atexit
import os
import queue
import re
import shutil
import subprocess
import threading
import time
from typing import Any, Dict, List, Optional

from . import _endpoint as E
from ._fleet import NodeInfo, ShResult
from .client import Client
from .errors import DaemonUnreachable, PythondError, UsageError, error_for

STARTUP_S = 30.0


class CommandResult(object):
    """What ``execute_command`` returns: ``stdout`` and ``stderr`` as text (UTF-8, undecodable bytes
    replaced; the exact bytes are in ``raw.stdout``), ``exit_code``, ``success``, ``timed_out``,
    ``duration_ms``, ``signal``, ``job_id``, and ``raw`` (the :class:`pythond.ShResult`)."""

    def __init__(self, raw: ShResult) -> None:
        self.raw = raw
        self.stdout = raw.stdout_text
        self.stderr = raw.stderr_text
        self.exit_code = raw.exit_code
        self.success = raw.exit_code == 0
        self.timed_out = raw.timed_out
        self.duration_ms = raw.duration_ms
        self.signal = raw.signal
        self.job_id = raw.id

    @property
    def return_code(self) -> Optional[int]:
        return self.exit_code

    def __repr__(self) -> str:
        return "CommandResult(exit_code=%r, stdout=%r, stderr=%r)" % (self.exit_code, self.stdout[:200], self.stderr[:200])


def find_binary(binary: Optional[str] = None) -> Optional[str]:
    return binary or os.environ.get("PYTHOND_BIN") or shutil.which("pythond")


class Server(object):
    """A hub for nodes (sandd's "daemons"); see the module's notes for what it starts."""

    def __init__(self, host: str = "0.0.0.0", port: int = 8765, tls: bool = True, binary: Optional[str] = None,
                 socket: Optional[str] = None, startup_timeout: float = STARTUP_S) -> None:
        self.host, self.port = host, int(port)
        self._binary = binary
        self._socket = socket or E.socket_path()
        self._proc: Optional["subprocess.Popen[str]"] = None
        self._log: List[str] = []
        self.scheme = "tls" if tls else "tcp"
        try:
            self.client = Client(socket=self._socket)
        except DaemonUnreachable:
            self._start(tls, startup_timeout)
            self.client = self._connect(startup_timeout)
        listen = self.client.hello().get("listen") or []
        mine = self._match(listen)
        if mine is None:
            self.client.close()
            self._stop()
            raise UsageError(
                "a pythond daemon runs here (%s) without a listener on %s:%d (it listens on: %s) -- stop it (pyctl stop) "
                "and start the hub with: pythond daemon --listen %s:%d --tls" % (
                    self._socket, host, self.port, ", ".join(listen) or "nothing", host, self.port))
        self.scheme, hp = mine.split("://", 1)
        self.port = int(hp.rsplit(":", 1)[1])

    def _match(self, listen: List[str]) -> Optional[str]:
        for e in listen:
            m = re.match(r"^(tls|tcp)://(.*):(\d+)$", str(e))
            if m and (self.port == 0 or int(m.group(3)) == self.port):
                return str(e)
        return None

    # -- the hub process -------------------------------------------------------------------------
    def _start(self, tls: bool, limit: float) -> None:
        binary = find_binary(self._binary)
        listen = "%s:%d" % (self.host, self.port)
        if not binary:
            raise DaemonUnreachable(
                "no hub runs here (no daemon at %s) and no pythond binary was found (PATH, $PYTHOND_BIN, binary=) -- "
                "start one with: pythond daemon --listen %s%s" % (self._socket, listen, " --tls" if tls else ""))
        self._binary = binary
        env = dict(os.environ, PYTHOND_SOCK=self._socket)
        args = [binary, "daemon", "--listen", listen] + (["--tls"] if tls else [])
        self._proc = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True)
        lines: "queue.Queue[Optional[str]]" = queue.Queue()
        threading.Thread(target=self._pump, args=(self._proc, lines), daemon=True).start()
        atexit.register(self._stop)
        deadline = time.monotonic() + limit
        while True:
            try:
                line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                self._stop()
                raise DaemonUnreachable("the hub (%s) did not start within %gs:\n%s" % (" ".join(args), limit,
                                                                                         "".join(self._log[-20:])))
            if line is None:
                self._stop()
                raise DaemonUnreachable("the hub (%s) exited at start:\n%s" % (" ".join(args), "".join(self._log[-20:])))
            if re.search(r"listening on (tls|tcp)://", line):
                return

    def _pump(self, proc: "subprocess.Popen[str]", lines: "queue.Queue[Optional[str]]") -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            self._log.append(line)
            del self._log[:-200]
            lines.put(line)
        lines.put(None)

    def _connect(self, limit: float) -> Client:
        deadline = time.monotonic() + limit
        while True:
            try:
                return Client(socket=self._socket)
            except DaemonUnreachable:
                if time.monotonic() > deadline or (self._proc is not None and self._proc.poll() is not None):
                    raise
                time.sleep(0.05)

    def _stop(self) -> None:
        p, self._proc = self._proc, None
        if p is None or p.poll() is not None:
            return
        p.terminate()  # the daemon ends; its sessions live on (as with pyctl stop --keep-sessions)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    @property
    def started_here(self) -> bool:
        """Whether this Server started the hub (and stops it on close)."""
        return self._proc is not None

    def log(self) -> str:
        """The last lines the hub started here printed (empty when it was already running)."""
        return "".join(self._log)

    # -- sandd's API -----------------------------------------------------------------------------
    @property
    def address(self) -> str:
        """``host:port`` the hub listens on (the port it got when 0 was asked)."""
        return "[%s]:%d" % (self.host, self.port) if ":" in self.host else "%s:%d" % (self.host, self.port)

    @property
    def url(self) -> str:
        """What nodes dial: ``wss://host:port`` (``ws://`` for a plain loopback listener)."""
        return "%s://%s" % ("wss" if self.scheme == "tls" else "ws", self.address)

    @property
    def fingerprint(self) -> Optional[str]:
        """The SHA-256 fingerprint of the hub's TLS certificate (what nodes check), when it is ours."""
        path = os.path.join(E.tls_dir(), "cert.pem")
        try:
            with open(path) as f:
                der = E._pem_der(f.read())
        except OSError:
            return None
        return E.fingerprint(der) if der else None

    def wait_for_daemon(self, daemon_id: str, timeout: Optional[float] = 30) -> NodeInfo:
        """Returns once the node is online; raises :class:`pythond.Timeout` saying why not."""
        return self.client.wait_for_node(daemon_id, timeout=timeout)

    def execute_command(self, daemon_id: str, command: str, timeout: Optional[float] = None,
                        cwd: Optional[str] = None, env: Optional[Dict[str, str]] = None,
                        stdin: Optional[bytes] = None) -> CommandResult:
        """Runs ``command`` with the node user's shell; a non-zero exit is a result, not an error."""
        return CommandResult(self.client.sh(daemon_id, command, timeout=timeout, cwd=cwd, env=env, stdin=stdin))

    def list_daemons(self) -> List[str]:
        """The ids of the nodes online now."""
        return [n.id for n in self.client.nodes() if n.online]

    def daemons(self) -> List[NodeInfo]:
        """Every node the hub knows, online or not, with its details."""
        return self.client.nodes()

    def is_connected(self, daemon_id: str) -> bool:
        return any(n.id == daemon_id and n.online for n in self.client.nodes())

    def upload_file(self, daemon_id: str, local_path: str, remote_path: str, recursive: bool = False) -> Dict[str, Any]:
        return self.client.put(daemon_id, local_path, remote_path, recursive=recursive)

    def download_file(self, daemon_id: str, remote_path: str, local_path: str, recursive: bool = False) -> Dict[str, Any]:
        return self.client.get(daemon_id, remote_path, local_path, recursive=recursive)

    def join_command(self, daemon_id: Optional[str] = None, labels: Optional[Dict[str, str]] = None,
                     ttl: Optional[str] = None, uses: Optional[int] = None) -> str:
        """The line to run on a machine to make it a node of this hub (``pyctl join-token``): a
        join token (valid 24 h unless ``ttl``, e.g. "30m", "7d"; any number of machines unless ``uses``)
        and the hub's fingerprint; ``--id daemon_id`` added when given."""
        binary = find_binary(self._binary)
        if not binary:
            raise DaemonUnreachable("no pythond binary found (PATH, $PYTHOND_BIN, binary=) to run pyctl join-token")
        args = [binary, "pyctl", "join-token"]
        for k, v in (labels or {}).items():
            args += ["--label", "%s=%s" % (k, v)]
        if ttl:
            args += ["--ttl", ttl]
        if uses is not None:
            args += ["--uses", str(uses)]
        r = subprocess.run(args, env=dict(os.environ, PYTHOND_SOCK=self._socket), capture_output=True, text=True)
        if r.returncode != 0:
            raise error_for("usage", "pyctl join-token failed: %s" % r.stderr.strip())
        line = r.stdout.strip().split("\n")[-1]
        return line + (" --id %s" % daemon_id if daemon_id else "")

    def close(self) -> None:
        """Closes the connection; stops the hub if this Server started it."""
        try:
            self.client.close()
        finally:
            self._stop()

    stop = close

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return "Server(%r, %d)" % (self.host, self.port)


__all__ = ["Server", "CommandResult"]
