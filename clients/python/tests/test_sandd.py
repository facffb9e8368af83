"""The sandd façade: the seed's program (sandd-readme.txt) runs unchanged (but for the address:
loopback and a free port) with `from sandd import Server`, against a hub it starts from PATH and a
real node that joins it; and Server's other calls and errors."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

from conftest import BIN, Node
from pythond import DaemonUnreachable, Timeout, UsageError
from pythond.sandd import Server

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")

SEED = '''from sandd import Server
# Start server
server = Server(host="127.0.0.1", port=0)
print(f"Server listening on {server.address}")
# Wait for daemons
server.wait_for_daemon("worker-1", timeout=30)
# Execute command
result = server.execute_command("worker-1", "hostname")
print(f"Output: {result.stdout}")'''


class _HubOf(object):
    """What conftest.Node needs of a hub: its port and a join token (pyctl against its socket)."""

    def __init__(self, env, port):
        self.env, self.port = env, port

    def join_token(self):
        r = subprocess.run([BIN, "pyctl", "join-token"], env=self.env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        words = r.stdout.strip().split("\n")[-1].split(" ")
        return words[words.index("--token") + 1], words[words.index("--fingerprint") + 1]


def private_env():
    d = tempfile.mkdtemp(prefix="pyd-sandd-")
    home = os.path.join(d, "home")
    os.mkdir(home)
    env = dict(os.environ, HOME=home, PYTHOND_SOCK=os.path.join(d, "run", "pythond.sock"), NO_COLOR="1",
               PYTHONPATH=SRC, PATH=os.path.dirname(BIN) + os.pathsep + os.environ.get("PATH", ""))
    for k in ("PYTHOND_BIN", "PYTHOND_HOST", "PYTHOND_TOKEN", "PYTHOND_TLS"):
        env.pop(k, None)
    return d, env


def test_the_seed_program_runs_unchanged():
    d, env = private_env()
    prog = os.path.join(d, "agent.py")
    with open(prog, "w") as f:
        f.write(SEED)
    p = subprocess.Popen([sys.executable, "-u", prog], env=env, cwd=d, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    node = None
    try:
        first = p.stdout.readline()
        m = re.match(r"^Server listening on 127\.0\.0\.1:(\d+)\n$", first)
        assert m, first + p.stderr.read()
        node = Node(_HubOf(env, int(m.group(1))), "worker-1")
        out, err = p.communicate(timeout=60)
        host = subprocess.run(["hostname"], capture_output=True, text=True).stdout
        assert out == "Output: %s" % host + "\n" and p.returncode == 0, err
        # the hub it started ended with the program
        r = subprocess.run([BIN, "pysh", "ls"], env=env, capture_output=True, text=True)
        assert r.returncode != 0 and "no daemon" in r.stderr
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        if node:
            node.close()
        shutil.rmtree(d, ignore_errors=True)


def test_server_on_a_running_hub(fleet, tmp_path):
    with Server("127.0.0.1", fleet.hub.port, socket=fleet.hub.sock) as server:
        assert not server.started_here
        assert server.address == "127.0.0.1:%d" % fleet.hub.port and server.url.startswith("wss://")
        assert server.wait_for_daemon("n1", timeout=5).id == "n1"
        assert {"n1", "n2"} <= set(server.list_daemons()) and server.is_connected("n2")
        assert not server.is_connected("ghost")
        r = server.execute_command("n1", "echo hi; echo oops >&2; exit 2")
        assert (r.stdout, r.stderr, r.exit_code, r.success) == ("hi\n", "oops\n", 2, False)
        r = server.execute_command("n1", "sleep 10", timeout=0.2)
        assert r.timed_out and r.exit_code == 124
        src = tmp_path / "up.txt"
        src.write_text("payload")
        server.upload_file("n1", str(src), "up.txt")
        server.download_file("n1", "up.txt", str(tmp_path / "down.txt"))
        assert (tmp_path / "down.txt").read_text() == "payload"
        with pytest.raises(Timeout) as ei:
            server.wait_for_daemon("worker-9", timeout=0.2)
        assert "did not come online" in str(ei.value)
        line = server.join_command("worker-9", labels={"role": "db"})
        assert re.match(r"^pythond join wss://\S+ --token \S+ --fingerprint [0-9A-F:]{95} --id worker-9$", line), line
        assert line.split("--fingerprint ")[1].split(" ")[0] == server.fingerprint or server.fingerprint is None
    # the hub it did not start runs on
    assert fleet.hub.proc.poll() is None


def test_server_errors(daemon, monkeypatch, tmp_path):
    # a daemon without that listener: say what to run
    with pytest.raises(UsageError) as ei:
        Server("127.0.0.1", 8765, socket=daemon.sock)
    assert "without a listener on 127.0.0.1:8765" in str(ei.value) and "pythond daemon --listen 127.0.0.1:8765" in str(ei.value)
    # no daemon and no binary: the exact command
    monkeypatch.delenv("PYTHOND_BIN", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DaemonUnreachable) as ei:
        Server("127.0.0.1", 8765, socket=str(tmp_path / "none.sock"))
    assert "pythond daemon --listen 127.0.0.1:8765 --tls" in str(ei.value)
