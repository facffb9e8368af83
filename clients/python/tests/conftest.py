"""Fixtures: a real dist/pythond daemon with a private HOME, runtime directory and socket.

Waits for conditions (the daemon's "listening on" line), never for time. Teardown kills the
daemon and, by pid, every session worker it recorded (their process groups)."""
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import tempfile
import threading

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
BIN = os.environ.get("PYTHOND_BIN") or os.path.join(ROOT, "dist", "pythond")


class Daemon(object):
    def __init__(self, args=(), env=None):
        self.dir = tempfile.mkdtemp(prefix="pyd-py-")
        self.home = os.path.join(self.dir, "home")
        os.mkdir(self.home)
        self.sock = os.path.join(self.dir, "run", "pythond.sock")
        self.env = dict(os.environ, PYTHOND_SOCK=self.sock, HOME=self.home, NO_COLOR="1")
        for k in ("PYTHOND_HOST", "PYTHOND_TOKEN", "PYTHOND_TLS"):
            self.env.pop(k, None)
        self.env.update(env or {})
        self.args = list(args)
        self.start()

    def start(self):
        self.proc = subprocess.Popen([BIN, "daemon"] + self.args, env=self.env, cwd=self.dir,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.log = ""
        self._lines = queue.Queue()
        threading.Thread(target=self._pump, args=(self.proc, self._lines), daemon=True).start()
        self.wait_for(r"listening on")

    @staticmethod
    def _pump(proc, lines):
        for line in proc.stderr:
            lines.put(line)
        lines.put(None)

    def wait_for(self, pattern, limit=30):
        """The first match of pattern in the daemon's stderr (waits for the line to appear)."""
        rx = re.compile(pattern)
        while True:
            m = rx.search(self.log)
            if m:
                return m
            line = self._lines.get(timeout=limit)
            if line is None:
                raise RuntimeError("daemon exited before %r:\n%s" % (pattern, self.log))
            self.log += line

    def pyctl(self, *args, env=None):
        e = dict(self.env, **(env or {}))
        return subprocess.run([BIN, "pyctl"] + list(args), env=e, capture_output=True, text=True)

    def worker_pids(self):
        d = os.path.join(self.dir, "run", "pythond", "sessions")
        pids = []
        for f in os.listdir(d) if os.path.isdir(d) else []:
            if f.endswith(".json"):
                try:
                    with open(os.path.join(d, f)) as fh:
                        pids.append(json.load(fh)["pid"])
                except (OSError, ValueError, KeyError):
                    pass
        return pids

    def close(self):
        pids = self.worker_pids()
        self.proc.kill()
        self.proc.wait()
        for pid in pids:
            for target in (-pid, pid):
                try:
                    os.kill(target, signal.SIGKILL)
                except OSError:
                    pass
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def daemon():
    d = Daemon()
    yield d
    d.close()


@pytest.fixture
def client(daemon):
    from pythond import Client

    c = Client(socket=daemon.sock)
    yield c
    c.close()


# -- the fleet: a hub (TLS listener on loopback port 0, heartbeats every second) and real
# `pythond join` nodes, each with its own HOME, socket and runtime directory. -------------------

class Hub(Daemon):
    def __init__(self, extra=()):
        super().__init__(["--listen", "127.0.0.1:0", "--tls", "--show-token", "--heartbeat", "1"] + list(extra))
        self.port = int(self.wait_for(r"listening on tls://127\.0\.0\.1:(\d+)").group(1))
        self.token = self.wait_for(r"token=([0-9a-f]+)").group(1)

    def join_token(self, *args):
        r = self.pyctl("join-token", *args)
        assert r.returncode == 0, r.stderr
        words = r.stdout.strip().split("\n")[-1].split(" ")
        return words[words.index("--token") + 1], words[words.index("--fingerprint") + 1]


class Node(object):
    """`pythond join` in the foreground with its own HOME and socket; returns once it says joined."""

    def __init__(self, hub, node_id, labels=(), port=None):
        self.id = node_id
        self.dir = tempfile.mkdtemp(prefix="pyd-node-")
        self.home = os.path.join(self.dir, "home")
        os.mkdir(self.home)
        self.sock = os.path.join(self.dir, "run", "pythond.sock")
        self.env = dict(os.environ, PYTHOND_SOCK=self.sock, HOME=self.home, NO_COLOR="1")
        for k in ("PYTHOND_HOST", "PYTHOND_TOKEN", "PYTHOND_TLS"):
            self.env.pop(k, None)
        token, fp = hub.join_token()
        args = ["wss://127.0.0.1:%d" % (port or hub.port), "--token", token, "--fingerprint", fp, "--id", node_id,
                "--heartbeat", "1"]
        for l in labels:
            args += ["--label", l]
        self.proc = subprocess.Popen([BIN, "join"] + args, env=self.env, cwd=self.dir, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.log = ""
        self._lines = queue.Queue()
        threading.Thread(target=Daemon._pump, args=(self.proc, self._lines), daemon=True).start()
        self.wait_for(r"joined: ")

    wait_for = Daemon.wait_for

    def worker_pids(self):
        return Daemon.worker_pids(self)

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    def close(self):
        pids = self.worker_pids()
        self.kill()
        for pid in pids:
            for target in (-pid, pid):
                try:
                    os.kill(target, signal.SIGKILL)
                except OSError:
                    pass
        shutil.rmtree(self.dir, ignore_errors=True)


class Fleet(object):
    def __init__(self):
        self.hub = Hub()
        self.nodes = []
        try:
            self.n1 = self.add("n1", ["role=web", "env=prod"])
            self.n2 = self.add("n2", ["role=web", "env=dev"])
        except BaseException:
            self.close()
            raise

    def add(self, node_id, labels=()):
        n = Node(self.hub, node_id, labels)
        self.nodes.append(n)
        return n

    def close(self):
        for n in self.nodes:
            n.close()
        self.hub.close()


@pytest.fixture(scope="session")
def fleet():
    f = Fleet()
    yield f
    f.close()


@pytest.fixture
def hub_client(fleet):
    from pythond import Client

    c = Client(socket=fleet.hub.sock)
    yield c
    c.close()
