"""Where and how to connect, exactly as pysh does (src/paths.ts, src/client/connect.ts, remote.ts).

- Local: the Unix socket ``$PYTHOND_SOCK``; else ``$XDG_RUNTIME_DIR/pythond.sock`` when that
  directory is ours and 0700; else ``$TMPDIR/pythond-$UID/pythond.sock``. While a daemon restarts
  in place (a ``restarting`` marker beside the socket) connecting waits for its successor.
- Local TCP mode (Windows, or ``PYTHOND_LOCAL_TCP=1``): port and token from ``daemon.json``.
- Remote: ``host=``/``PYTHOND_HOST`` (``HOST:PORT``, ``[V6]:PORT`` or ``HOST`` with
  ``PYTHOND_PORT``/7984), ``token=``/``PYTHOND_TOKEN``, TLS when asked (``tls=True``,
  ``PYTHOND_TLS=1``) and always off loopback. The server's certificate must be one pinned with
  ``pyctl pin`` (``~/.pythond/tls/trusted_servers/*.pem``, compared by SHA-256 fingerprint; host
  names play no part); ``~/.pythond/tls/cert.pem``/``key.pem`` are presented for mTLS when present.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import socket
import ssl
import stat
import sys
from typing import Dict, Optional, Union

from .errors import AuthFailed, DaemonUnreachable, PythondError, UsageError

DEFAULT_PORT = 7984
RESTART_GRACE_S = 10.0


class Local(object):
    def __init__(self, path: str) -> None:
        self.path = path

    def label(self) -> str:
        return self.path


class Remote(object):
    def __init__(self, host: str, port: int, tls: bool, token: str) -> None:
        self.host, self.port, self.tls, self.token = host, port, tls, token

    def hostport(self) -> str:
        return "[%s]:%d" % (self.host, self.port) if ":" in self.host else "%s:%d" % (self.host, self.port)

    def uri(self) -> str:
        return "%s://%s/" % ("wss" if self.tls else "ws", self.hostport())

    def label(self) -> str:
        return self.hostport() + (" tls" if self.tls else "")


Endpoint = Union[Local, Remote]


def _uid() -> int:
    return os.getuid() if hasattr(os, "getuid") else 0


def _tmpdir() -> str:
    # node's os.tmpdir(), which pysh uses: TMPDIR, TMP, TEMP, else /tmp (no trailing slash).
    d = os.environ.get("TMPDIR") or os.environ.get("TMP") or os.environ.get("TEMP") or "/tmp"
    return d.rstrip("/") or "/"


def socket_path() -> str:
    env = os.environ.get("PYTHOND_SOCK")
    if env:
        return env
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        try:
            st = os.stat(xdg)
            if stat.S_ISDIR(st.st_mode) and st.st_uid == _uid() and (st.st_mode & 0o777) == 0o700:
                return os.path.join(xdg, "pythond.sock")
        except OSError:
            pass
    return os.path.join(os.environ.get("TMPDIR") or _tmpdir(), "pythond-%d" % _uid(), "pythond.sock")


def runtime_dir(sock: str) -> str:
    return os.path.join(os.path.dirname(sock), "pythond")


def restart_marker(sock: str) -> str:
    return os.path.join(runtime_dir(sock), "restarting")


def tls_dir() -> str:
    return os.path.join(os.environ.get("HOME") or os.path.expanduser("~"), ".pythond", "tls")


def is_loopback(host: str) -> bool:
    return host.startswith("127.") or host in ("::1", "localhost")


def parse_host_port(spec: str, what: str = "PYTHOND_HOST") -> "tuple[str, int]":
    m = re.match(r"^\[([^\]]+)\](?::(\d+))?$", spec) or re.match(r"^([^:\s\[\]]*)(?::(\d+))?$", spec)
    port = int(m.group(2)) if m and m.group(2) else int(os.environ.get("PYTHOND_PORT") or DEFAULT_PORT)
    if not m or not m.group(1) or not 0 < port <= 65535:
        raise UsageError("%s takes HOST:PORT (got %s)" % (what, json.dumps(spec)))
    return m.group(1), port


def decide_tls(host: str, asked: Union[str, bool, None]) -> bool:
    if asked is True or asked == "1":
        return True
    if is_loopback(host):
        return False
    if asked is False or asked == "0":
        raise UsageError("refusing to send the token in clear text to %s: plain TCP is for loopback only" % host)
    return True


def resolve(socket: Optional[str] = None, host: Optional[str] = None, token: Optional[str] = None,
            tls: Optional[bool] = None) -> Endpoint:
    """The endpoint chosen by the arguments, else by the environment, as pysh chooses it."""
    if socket:
        return Local(socket)
    spec = host or os.environ.get("PYTHOND_HOST")
    if spec:
        h, port = parse_host_port(spec, "host" if host else "PYTHOND_HOST")
        use_tls = decide_tls(h, tls if tls is not None else os.environ.get("PYTHOND_TLS"))
        tok = token or os.environ.get("PYTHOND_TOKEN")
        if not tok:
            raise AuthFailed("no token for %s: pass token= or set PYTHOND_TOKEN (the daemon prints it when started "
                             "with --show-token, or keeps it in its --token-file)" % spec)
        return Remote(h, port, use_tls, tok)
    if sys.platform == "win32" or os.environ.get("PYTHOND_LOCAL_TCP") == "1":
        return _local_daemon_json()
    return Local(socket_path())


def _local_daemon_json() -> Remote:
    path = os.path.join(runtime_dir(socket_path()), "daemon.json")
    try:
        with open(path) as f:
            d = json.load(f)
    except OSError:
        raise DaemonUnreachable("no daemon (no %s) -- start one with: pythond daemon (or: pyctl start)" % path)
    if sys.platform != "win32" and os.stat(path).st_mode & 0o077:
        raise AuthFailed("%s is readable by others; refusing to use its token" % path)
    return Remote("127.0.0.1", int(d["port"]), False, str(d["token"]))


# -- TLS -------------------------------------------------------------------------------------

def _pem_der(pem: str) -> Optional[bytes]:
    m = re.search(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", pem, re.S)
    return base64.b64decode("".join(m.group(1).split())) if m else None


def fingerprint(der: bytes) -> str:
    """``AA:BB:...``: SHA-256 of the DER certificate, as pyctl prints it."""
    h = hashlib.sha256(der).hexdigest().upper()
    return ":".join(h[i:i + 2] for i in range(0, len(h), 2))


def read_pins() -> Dict[str, str]:
    """Pinned server certificates: fingerprint -> PEM (unreadable files pin nothing)."""
    d = os.path.join(tls_dir(), "trusted_servers")
    pins: Dict[str, str] = {}
    try:
        names = sorted(n for n in os.listdir(d) if n.endswith(".pem"))
    except OSError:
        return pins
    for n in names:
        try:
            with open(os.path.join(d, n)) as f:
                pem = f.read()
            der = _pem_der(pem)
            if der:
                pins[fingerprint(der)] = pem
        except OSError:
            continue
    return pins


def ssl_context(ep: Remote) -> "tuple[ssl.SSLContext, Dict[str, str]]":
    pins = read_pins()
    if not pins:
        fp = server_fingerprint(ep)
        raise AuthFailed(
            "no server certificate pinned, so %s cannot be verified -- copy the server's ~/.pythond/tls/cert.pem here "
            "and run: pyctl pin <cert.pem>%s" % (
                ep.hostport(),
                " (the server presents %s; compare it with what `pyctl cert` prints on the server)" % fp if fp
                else " (and no TLS server answered there: is it down, or a plain listener? then use tls=False)"))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # The pins are the only trust anchors and host names do not matter (as known_hosts); after the
    # handshake the presented certificate must be exactly one of them (check_pinned).
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata="\n".join(pins.values()))
    cert, key = os.path.join(tls_dir(), "cert.pem"), os.path.join(tls_dir(), "key.pem")
    if os.path.isfile(cert) and os.path.isfile(key):
        try:
            ctx.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError):
            pass  # none usable here: fine unless the server wants one
    return ctx, pins


def check_pinned(ep: Remote, der: Optional[bytes], pins: Dict[str, str]) -> None:
    fp = fingerprint(der) if der else "(none)"
    if fp not in pins:
        raise mismatch(ep, fp, pins)


def mismatch(ep: Remote, got: str, pins: Dict[str, str]) -> AuthFailed:
    shown = ", ".join(list(pins)[:3]) + (" (and %d more)" % (len(pins) - 3) if len(pins) > 3 else "")
    return AuthFailed(
        "server certificate mismatch for %s: it presents %s, pinned: %s -- if the server's certificate was replaced on "
        "purpose, copy the new cert.pem here and run: pyctl pin <cert.pem>; otherwise do not connect" % (ep.hostport(), got, shown))


def server_fingerprint(ep: Remote, timeout: float = 5.0) -> Optional[str]:
    """The server's certificate fingerprint from a handshake that verifies and sends nothing (for errors only)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((ep.host, ep.port), timeout=timeout) as raw:
            with ctx.wrap_socket(raw) as s:
                der = s.getpeercert(binary_form=True)
                return fingerprint(der) if der else None
    except (OSError, ssl.SSLError):
        return None


def connect_timeout() -> float:
    try:
        s = float(os.environ.get("PYTHOND_CONNECT_TIMEOUT") or 10)
    except ValueError:
        s = 10
    return s if s > 0 else 10


def explain_connect_error(ep: Endpoint, e: BaseException) -> PythondError:
    """One clear PythondError for a failed connection (what happened, what to do)."""
    if isinstance(e, PythondError):
        return e
    if isinstance(ep, Local):
        return DaemonUnreachable("no daemon at %s -- start one with: pythond daemon (or: pyctl start)" % ep.path)
    where = ep.hostport()
    text = "%s %s" % (type(e).__name__, e)
    if isinstance(e, ConnectionRefusedError) or "refused" in text.lower():
        return DaemonUnreachable("connection refused by %s (no daemon listening there?)" % where)
    if isinstance(e, socket.gaierror):
        return DaemonUnreachable("cannot resolve %s" % ep.host)
    if isinstance(e, TimeoutError) or "timed out" in text:
        return PythondError("timed out after %gs connecting to %s" % (connect_timeout(), where), "timeout")
    if not ep.tls:
        if server_fingerprint(ep):
            return DaemonUnreachable("%s speaks TLS: pass tls=True (or PYTHOND_TLS=1) and pin its certificate" % where)
        return DaemonUnreachable("cannot connect to %s: %s" % (where, e))
    if re.search(r"WRONG_VERSION_NUMBER|wrong version|packet length|HTTP_REQUEST", text):
        return DaemonUnreachable("%s does not speak TLS (a plain TCP listener): use tls=False" % where)
    if "CERTIFICATE_REQUIRED" in text:
        return AuthFailed("auth failed: %s requires a trusted client certificate and this machine has none -- run "
                          "`pyctl cert` here, copy ~/.pythond/tls/cert.pem to the server and run there: pyctl trust <cert.pem>" % where)
    if isinstance(e, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in text:
        fp = server_fingerprint(ep)
        return mismatch(ep, fp or "(no certificate)", read_pins())
    if re.search(r"ALERT_(BAD_CERTIFICATE|UNKNOWN_CA|CERTIFICATE_UNKNOWN|ACCESS_DENIED|HANDSHAKE_FAILURE)|alert", text, re.I):
        return AuthFailed("auth failed: %s does not trust this machine's client certificate -- copy ~/.pythond/tls/cert.pem "
                          "to the server and run there: pyctl trust <cert.pem>" % where)
    return DaemonUnreachable("cannot connect to %s: %s" % (where, e))


def explain_rejection(ep: Endpoint, text: str) -> str:
    """A remote daemon's terse first-frame rejection, made clearer (as pysh does)."""
    if not isinstance(ep, Remote):
        return text
    if text.startswith("ERR auth_failed: "):  # the same rejection from a daemon that sends codes
        text = "ERR " + text[len("ERR auth_failed: "):]
    if text == "ERR auth failed":
        return ("ERR auth failed: %s rejected the token (a daemon started without --token-file makes a new token at "
                "each start; see --show-token)" % ep.hostport())
    if text.startswith("ERR auth failed: client certificate"):
        return "ERR auth failed: %s %s -- see pyctl trust on the server" % (ep.hostport(), text[len("ERR auth failed: "):])
    return text

