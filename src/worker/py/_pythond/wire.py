"""Daemon <-> worker framing, mirrored by src/worker/wire.ts.

A frame is: u32 big-endian length of the rest | u32 big-endian header length | header (UTF-8 JSON)
| body (raw bytes). Headers are small; bodies (code, output) are never JSON-escaped.
"""
import json
import struct
import threading

_PREFIX = struct.Struct(">II")
MAX_FRAME = 1 << 31


_encode_json = json.JSONEncoder(separators=(",", ":")).encode  # json.dumps would build one per call


def encode(header, body=b""):
    h = _encode_json(header).encode("utf-8")
    return _PREFIX.pack(4 + len(h) + len(body), len(h)) + h, body


class Conn(object):
    """One daemon connection. Reads happen on the IO thread; sends from any thread, serialised."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()
        self.lock = threading.Lock()
        self.closed = False
        self.authed = False

    def send(self, header, body=b""):
        head, body = encode(header, body)
        with self.lock:
            if self.closed:
                return False
            try:
                if len(body) < 65536:
                    self.sock.sendall(head + body)
                else:
                    self.sock.sendall(head)
                    self.sock.sendall(body)
                return True
            except OSError:
                self.closed = True
                return False

    def feed(self, data):
        """Appends received bytes; yields complete (header, body) pairs."""
        self.buf += data
        out = []
        while len(self.buf) >= 8:
            total, hlen = _PREFIX.unpack_from(self.buf, 0)
            if total > MAX_FRAME or hlen > total - 4:
                raise ValueError("bad frame from daemon")
            if len(self.buf) < 4 + total:
                break
            header = json.loads(bytes(self.buf[8:8 + hlen]).decode("utf-8"))
            body = bytes(self.buf[8 + hlen:4 + total])
            del self.buf[:4 + total]
            out.append((header, body))
        return out
