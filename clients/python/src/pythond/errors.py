"""Errors: one exception type with the protocol's stable codes (src/protocol/errors.ts).

Every failure is a :class:`PythondError` whose ``code`` is one of the codes below; the common
ones have subclasses to catch (``except NoSession``). A cell that raised is not an error of the
call: ``run`` returns a result with ``ok`` False; ``result.raise_for_error()`` raises
:class:`ExecutionFailed` with the traceback.
"""
from __future__ import annotations

import json
import re
from typing import Dict, Optional, Tuple, Type


class PythondError(Exception):
    """A failure with a stable ``code`` (``no_session``, ``auth_failed``, ...) and a message."""

    code = "internal"

    def __init__(self, message: str, code: Optional[str] = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


class UsageError(PythondError):
    code = "usage"


class UnknownCommand(PythondError):
    code = "unknown_command"


class InvalidName(PythondError, ValueError):
    code = "invalid_name"


class NoSession(PythondError, LookupError):
    code = "no_session"


class SessionExists(PythondError):
    code = "session_exists"


class SessionDead(PythondError):
    """The session's process is gone (crashed, killed, exited): its namespace is lost."""

    code = "session_dead"


class UnknownCell(PythondError, LookupError):
    code = "unknown_cell"


class AuthFailed(PythondError, PermissionError):
    code = "auth_failed"


class Timeout(PythondError, TimeoutError):
    code = "timeout"


class DaemonUnreachable(PythondError, ConnectionError):
    code = "daemon_unreachable"


class FrameTooLarge(PythondError):
    code = "frame_too_large"


class NotLocal(PythondError):
    code = "not_local"


class ExecutionFailed(PythondError):
    """A cell raised: ``traceback`` is Python's, ``output`` what it printed before, ``cell_id`` its id."""

    code = "execution_failed"

    def __init__(self, traceback: str, output: str = "", cell_id: Optional[str] = None) -> None:
        super().__init__(traceback or "execution failed")
        self.traceback = traceback
        self.output = output
        self.cell_id = cell_id


# -- the fleet (nodes of a hub) -------------------------------------------------------------

class NoSuchNode(PythondError, LookupError):
    """No node of that name on this hub: ``no node 'x' -- nodes: a, b``."""

    code = "no_node"


class NodeOffline(PythondError, ConnectionError):
    """The node is enrolled but its link is down (or went down during the call)."""

    code = "node_offline"


class NodeLost(NodeOffline):
    """The node's link went away while a command ran: the command runs on there. ``job_id`` names
    it; ``client.job(node, job_id, wait=True)`` gets its output and result once the node is back."""

    def __init__(self, message: str, node: str, job_id: Optional[str]) -> None:
        super().__init__(message)
        self.node = node
        self.job_id = job_id


class NoJob(PythondError, LookupError):
    code = "no_job"


class TransferFailed(PythondError):
    """A file transfer (or a tunnel) broke off; a part file is kept where it resumes from."""

    code = "transfer_failed"


class ChecksumMismatch(TransferFailed):
    code = "checksum_mismatch"


class RemoteFileError(PythondError, OSError):
    """A file error on either side of a transfer: ``code`` is not_found, is_directory,
    not_directory, permission_denied or no_space."""

    code = "io"


class CommandFailed(PythondError):
    """``ShResult.check()`` on a command that did not exit 0: ``result`` is the ShResult."""

    code = "execution_failed"

    def __init__(self, message: str, result: object = None) -> None:
        super().__init__(message)
        self.result = result


_BY_CODE: Dict[str, Type[PythondError]] = {
    c.code: c
    for c in (UsageError, UnknownCommand, InvalidName, NoSession, SessionExists, SessionDead, UnknownCell,
              AuthFailed, Timeout, DaemonUnreachable, FrameTooLarge, NotLocal, NoSuchNode, NodeOffline, NoJob,
              TransferFailed, ChecksumMismatch)
}
_FILE_CODES = ("not_found", "is_directory", "not_directory", "permission_denied", "no_space")
KNOWN_CODES = set(_BY_CODE) | set(_FILE_CODES) | {
    "execution_failed", "binary_frame", "bad_frame", "worker_incompatible", "worker_start", "daemon_running", "io",
    "internal", "unsafe_path", "busy", "no_shell", "connect_failed"}

# Replies that carry only the message (pythond.0.4 and today's pythond.1) are classified by it:
# the wording is documented in the README and pinned by the project's tests.
_BY_MESSAGE: Tuple[Tuple["re.Pattern[str]", str], ...] = tuple(
    (re.compile(p), c)
    for p, c in (
        (r"^execution failed", "execution_failed"),
        (r"^no session '|^no remote '", "no_session"),
        (r"^no node '|^no node matches|is not a hub", "no_node"),
        (r"^node '[^']*' is offline|^node '[^']*': ", "node_offline"),
        (r"^session '[^']*' already exists", "session_exists"),
        (r"^session '[^']*' (died|is dead|.*-- start it again)", "session_dead"),
        (r"^auth failed|^no server certificate pinned|^server certificate mismatch", "auth_failed"),
        (r"^invalid session name", "invalid_name"),
        (r"^usage:|^new takes a name only|takes a number of seconds", "usage"),
        (r"^unknown: ", "unknown_command"),
        (r"^cell \S+ is still running after --timeout|^timed out", "timeout"),
        (r"^frame too large", "frame_too_large"),
        (r"^no daemon|^daemon closed the connection|^connection refused", "daemon_unreachable"),
        (r"is only accepted on the local socket", "not_local"),
    )
)


class CodedReply(str):
    """A reply read on a connection that carries codes (pythond.1+codes): a tag is always the code."""


def classify(reply: str) -> Tuple[str, str]:
    """(code, message) of an ``ERR ...`` reply; both ``ERR <code>: message`` and bare messages parse."""
    body = reply[4:] if reply.startswith("ERR ") else reply
    m = re.match(r"^([a-z_]+): ", body)
    if m and m.group(1) in KNOWN_CODES and isinstance(reply, CodedReply):
        return m.group(1), body[m.end():]
    if m and m.group(1) in KNOWN_CODES:
        # "usage: poll <name>" is a plain message that looks tagged; "usage: usage: poll <name>" is
        # the tagged form of it: the tag is real unless only the untagged reading classifies.
        rest = body[m.end():]
        plain = _by_message(body)
        if plain == "internal" or _by_message(rest) == plain:
            return m.group(1), rest
    if body.startswith("{"):
        try:
            d = json.loads(body)
            if isinstance(d, dict) and d.get("output") == "unknown cell":
                return "unknown_cell", "unknown cell %s (finished cells are kept for an hour at most)" % d.get("cell_id")
        except ValueError:
            pass
    return _by_message(body), body


def _by_message(message: str) -> str:
    for p, c in _BY_MESSAGE:
        if p.search(message):
            return c
    return "internal"


def error_for(code: str, message: str) -> PythondError:
    """The exception for a code (its subclass when there is one)."""
    cls = _BY_CODE.get(code)
    if cls is not None:
        return cls(message)
    if code in _FILE_CODES:
        return RemoteFileError(message, code)
    if code == "execution_failed":
        return ExecutionFailed(message)
    return PythondError(message, code)


def from_reply(reply: str) -> PythondError:
    code, message = classify(reply)
    return error_for(code, message)
