"""pythond: client library for persistent Python sessions.

    from pythond import Client
    c = Client()                      # the local daemon, found as pysh finds it
    s = c.new("work")
    r = s.run("x = 41\\nprint(x + 1)")   # r.ok, r.output == "42\\n", r.error, r.cell_id
    s.run("1/0").raise_for_error()    # raises ExecutionFailed with the traceback

On a hub (a daemon with ``--listen``) the same client reaches its nodes::

    c.wait_for_node("worker-1", timeout=30)
    r = c.sh("worker-1", "hostname")   # r.stdout (bytes), r.exit_code, r.timed_out, r.duration_ms
    for r in c.sh_many("role=web", "uptime"): ...
    c.put("worker-1", "model.bin", "models/"); c.get("worker-1", "logs/app.log", ".")

``AsyncClient`` (pythond.aio) has the same operations for asyncio; ``pythond.sandd.Server`` is a
façade for programs written for sandd.
"""
from ._proto import CellState, RunResult, SessionInfo
from .aio import AsyncCellStream, AsyncClient, AsyncSession
from .client import CellStream, Client, Session
from ._fleet import JobInfo, NodeInfo, ShResult
from .aio_fleet import AsyncShStream
from .errors import (AuthFailed, ChecksumMismatch, CommandFailed, DaemonUnreachable, ExecutionFailed, FrameTooLarge,
                     InvalidName, NodeLost, NodeOffline, NoJob, NoSession, NoSuchNode, NotLocal, PythondError,
                     RemoteFileError, SessionDead, SessionExists, Timeout, TransferFailed, UnknownCell, UnknownCommand,
                     UsageError)
from .fleet import ShStream

__version__ = "0.5.0"
__all__ = [
    "Client", "Session", "CellStream", "AsyncClient", "AsyncSession", "AsyncCellStream", "RunResult", "CellState",
    "SessionInfo", "PythondError", "UsageError", "UnknownCommand", "InvalidName", "NoSession", "SessionExists",
    "SessionDead", "UnknownCell", "AuthFailed", "Timeout", "DaemonUnreachable", "FrameTooLarge", "NotLocal",
    "ExecutionFailed", "NodeInfo", "ShResult", "JobInfo", "ShStream", "AsyncShStream", "NoSuchNode", "NodeOffline",
    "NodeLost", "NoJob", "TransferFailed", "ChecksumMismatch", "RemoteFileError", "CommandFailed",
]
