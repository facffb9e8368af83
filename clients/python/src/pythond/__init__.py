"""pythond: client library for persistent Python sessions.

    from pythond import Client
    c = Client()                      # the local daemon, found as pysh finds it
    s = c.new("work")
    r = s.run("x = 41\\nprint(x + 1)")   # r.ok, r.output == "42\\n", r.error, r.cell_id
    s.run("1/0").raise_for_error()    # raises ExecutionFailed with the traceback

``AsyncClient`` (pythond.aio) has the same operations for asyncio.
"""
from ._proto import CellState, RunResult, SessionInfo
from .aio import AsyncCellStream, AsyncClient, AsyncSession
from .client import CellStream, Client, Session
from .errors import (AuthFailed, DaemonUnreachable, ExecutionFailed, FrameTooLarge, InvalidName, NoSession, NotLocal,
                     PythondError, SessionDead, SessionExists, Timeout, UnknownCell, UnknownCommand, UsageError)

__version__ = "0.5.0"
__all__ = [
    "Client", "Session", "CellStream", "AsyncClient", "AsyncSession", "AsyncCellStream", "RunResult", "CellState",
    "SessionInfo", "PythondError", "UsageError", "UnknownCommand", "InvalidName", "NoSession", "SessionExists",
    "SessionDead", "UnknownCell", "AuthFailed", "Timeout", "DaemonUnreachable", "FrameTooLarge", "NotLocal",
    "ExecutionFailed",
]
