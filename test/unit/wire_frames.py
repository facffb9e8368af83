"""Checks of _pythond.wire (the worker's side of daemon framing), run by bootstrap.test.ts with
cwd = src/worker/py: frames parsed where they lie in one read, frames split across reads, and
what is not a frame refused."""
import socket
import sys

sys.path.insert(0, ".")
from pychecks import check, done  # noqa: E402 (beside this file)
from _pythond import wire  # noqa: E402


def frame(header, body=b""):
    head, body = wire.encode(header, body)
    return head + body


a, b = socket.socketpair()
conn = wire.Conn(b)
three = frame({"op": "run", "rid": 1}, b"x + 1") + frame({"op": "ack", "cell": "c", "n": 5}) + frame({"op": "run", "rid": 2}, "é".encode())
a.sendall(three)
got = conn.receive()
check(got == [({"op": "run", "rid": 1}, b"x + 1"), ({"op": "ack", "cell": "c", "n": 5}, b""), ({"op": "run", "rid": 2}, "é".encode())],
      "three whole frames from one read: %r" % (got,))
check(not conn.buf, "nothing left over")

# A frame in pieces: the first read ends inside the header, the next inside the body.
f = frame({"op": "run", "rid": 3}, b"y" * 1000)
a.sendall(f[:10])
check(conn.receive() == [], "half a header: no frame yet")
a.sendall(f[10:500])
check(conn.receive() == [], "half a body: no frame yet")
a.sendall(f[500:] + frame({"op": "run", "rid": 4}, b"z"))
got = conn.receive()
check(got == [({"op": "run", "rid": 3}, b"y" * 1000), ({"op": "run", "rid": 4}, b"z")], "the rest, and one more: %r" % (got,))
check(not conn.buf, "nothing left over after the split frame")

# Bodies are copies: the receive buffer is reused by the next read.
a.sendall(frame({"op": "run", "rid": 5}, b"first"))
(_, body1), = conn.receive()
a.sendall(frame({"op": "run", "rid": 6}, b"SECOND"))
conn.receive()
check(body1 == b"first", "a body survives the next read")

for bad, what in ((b"[1]", "a header that is not an object"), (b"{\"op\":1} x", "trailing bytes after the header"),
                  (b"\xff", "a header that is not UTF-8"), (b"", "an empty header"), (b"{\"op\":", "a cut header")):
    x, y = socket.socketpair()
    c = wire.Conn(y)
    x.sendall(wire._PREFIX.pack(4 + len(bad), len(bad)) + bad)
    check(c.receive() is None, "refused: " + what)
x, y = socket.socketpair()
c = wire.Conn(y)
x.sendall(wire._PREFIX.pack(4, 9) + b"\0" * 8)
check(c.receive() is None, "refused: a header longer than its frame")
x.close()
check(wire.Conn(y).receive() is None, "a closed connection ends")
done()
