"""Daemon <-> worker framing, mirrored by src/link/frame.ts.

A frame is: u32 big-endian length of the rest | u32 big-endian header length | header (UTF-8 JSON)
| body (raw bytes). Headers are small; bodies (code, output) are never JSON-escaped.
"""
import json
import os
import struct
import threading

_PREFIX = struct.Struct(">II")
MAX_FRAME = 1 << 31
CORK_MAX = 64 << 10
# One read's worth. A recv(1 MiB) allocated (mmap) and freed a fresh 1 MiB buffer per read: three
# system calls and page faults per cell; recv_into a buffer kept per connection costs none.
RECV_SIZE = 256 << 10


_encode_json = json.JSONEncoder(separators=(",", ":")).encode  # json.dumps would build one per call
_scan_json = json.JSONDecoder().scan_once  # the C scanner: json.loads is three Python layers above it


def decode_header(data):
    """A frame's header (UTF-8 JSON object) from bytes; ValueError if it is anything else."""
    text = data.decode("utf-8")  # UnicodeDecodeError is a ValueError
    try:
        header, end = _scan_json(text, 0)
    except StopIteration:
        raise ValueError("frame header is not JSON")
    if end != len(text) or type(header) is not dict:
        raise ValueError("frame header is not a JSON object")
    return header


def encode(header, body=b""):
    """header: a dict, or JSON text already encoded (cell_header)."""
    h = header if type(header) is bytes else _encode_json(header).encode("utf-8")
    return _PREFIX.pack(4 + len(h) + len(body), len(h)) + h, body


def cell_header(op, rid, cell_id):
    """`{"op":..,"rid":..,"cell":..}` of start and out frames, formatted without the JSON encoder
    (every cell sends them). Cell ids are our own hex strings; anything unusual takes json."""
    if type(rid) is int:
        return ('{"op":"%s","rid":%d,"cell":"%s"}' % (op, rid, cell_id)).encode()
    return _encode_json({"op": op, "rid": rid, "cell": cell_id}).encode("utf-8")


class Conn(object):
    """One daemon connection. Reads happen on one thread (the IO thread, or the main thread for
    the run lane); sends from any thread, serialised.

    Corked (the run lane, while a sync cell runs): frames gather in a buffer and go out in one
    write when the cell ends, when CORK_MAX bytes are waiting, or when flush() is called (the
    capture thread does so every tick while a cell runs). A quick cell's start, output and end
    then cost one write, and the daemon and its client wake once for them instead of three times.
    """

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()
        self.lock = threading.Lock()
        self.closed = False
        self.authed = False
        self.lane = None
        self.corked = False
        self.wbuf = []
        self.wsize = 0
        self.rbuf = None  # the receive buffer, made at the first read (recv_into: no allocation per read)

    def send(self, header, body=b""):
        head, body = encode(header, body)
        with self.lock:
            if self.closed:
                return False
            if self.corked:
                if len(body) >= CORK_MAX:  # bulk output: no copy into the cork, straight out after it
                    return self._flush_locked() and self._write_locked(head, body)
                self.wbuf.append(head)
                if body:
                    self.wbuf.append(body)
                self.wsize += len(head) + len(body)
                return self.wsize < CORK_MAX or self._flush_locked()
            return self._write_locked(head + body) if len(body) < 65536 else self._write_locked(head, body)

    def cork(self, header=None):
        """From now on sends gather (see the class); header: a first frame to gather (no body)."""
        with self.lock:
            self.corked = True
            if header is not None:
                head = _PREFIX.pack(4 + len(header), len(header)) + header
                self.wbuf.append(head)
                self.wsize += len(head)

    def uncork(self):
        with self.lock:
            self.corked = False
            return self._flush_locked()

    def flush(self):
        with self.lock:
            return self._flush_locked()

    def _flush_locked(self):
        if not self.wbuf:
            return not self.closed
        data = b"".join(self.wbuf)
        self.wbuf = []
        self.wsize = 0
        return self._write_locked(data)

    def _write_locked(self, *parts):
        if self.closed:
            return False
        try:
            for part in parts:
                self.sock.sendall(part)
            return True
        except OSError:
            self.closed = True
            return False

    def receive(self):
        """One read from the socket (its reader thread only): the whole frames it completes, or
        None when the connection has ended or sent something that is not a frame."""
        if self.rbuf is None:
            self.rbuf = bytearray(RECV_SIZE)
            self.rview = memoryview(self.rbuf)
        try:
            n = self.sock.recv_into(self.rbuf)
        except OSError:
            return None
        if not n:
            return None
        try:
            if self.buf:
                return self.feed(self.rview[:n])
            # The usual read: whole frames, nothing left over from before. They are parsed where
            # they lie; only an incomplete tail is kept.
            out, used = _parse(self.rview, n)
            if used < n:
                self.buf += self.rview[used:n]
            return out
        except ValueError:
            return None

    def feed(self, data):
        """Appends received bytes; returns the complete (header, body) pairs."""
        self.buf += data
        out, used = _parse(self.buf, len(self.buf))
        del self.buf[:used]
        return out


def _parse(buf, n):
    """The whole frames in buf[:n]: ([(header, body)], bytes they take)."""
    out = []
    off = 0
    while n - off >= 8:
        total, hlen = _PREFIX.unpack_from(buf, off)
        if total > MAX_FRAME or hlen > total - 4:
            raise ValueError("bad frame from daemon")
        end = off + 4 + total
        if end > n:
            break
        start = off + 8 + hlen
        out.append((decode_header(bytes(buf[off + 8:start])), bytes(buf[start:end])))
        off = end
    return out, off


def poke(fd):
    """Wakes the thread that waits on a self-pipe (write end fd, non-blocking)."""
    try:
        os.write(fd, b"x")
    except OSError:
        pass  # the pipe is full: that thread is awake anyway
