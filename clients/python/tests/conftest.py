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
