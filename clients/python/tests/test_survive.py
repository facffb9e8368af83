"""The daemon dies while a cell runs: the client says which cell keeps running, and a client of
the next daemon (which adopts the session) gets its result with wait."""
import os

import pytest

from conftest import Daemon
from pythond import Client, DaemonUnreachable


def test_daemon_killed_mid_cell_then_wait_on_its_successor():
    d = Daemon()
    try:
        c = Client(socket=d.sock)
        s = c.new("survive")
        flag = os.path.join(d.dir, "flag")
        pieces = []

        def on_output(piece):
            pieces.append(piece)
            if len(pieces) == 1:  # the cell is running: the daemon dies now
                d.proc.kill()
                d.proc.wait()

        code = "import os, time\nprint('before', flush=True)\nwhile not os.path.exists(%r): time.sleep(0.01)\nprint('after')" % flag
        with pytest.raises(DaemonUnreachable) as ei:
            s.run(code, on_output=on_output)
        msg = str(ei.value)
        assert "keeps running" in msg
        cell_id = msg.split("cell ")[-1].split(" ")[0]
        assert len(cell_id) == 12
        d.start()  # the next daemon adopts the session
        open(flag, "w").close()
        with Client(socket=d.sock) as c2:
            r = c2.session("survive").wait(cell_id)
            assert r.ok and r.output == "before\nafter"
    finally:
        d.close()
