"""The worker's side of the line editor (editor.py): starting it, talking to it, restarting it.

The editor is a child Python in its own session, with the PTY slave as controlling terminal and as
fds 0/1/2 (readline needs real C stdin/stdout; the worker's fd 1 is the capture pipe). It is
started at the first attach and restarted if it dies while someone is attached (at most 5 times in
30 s: a crash loop leaves the PTY as a plain viewer). It dies with the worker: its socket reaches
EOF and its terminal hangs up.

Messages are JSON lines over a socketpair; the relay thread (terminal.py) reads them and calls
`handle`. `pause` is the one request the worker waits for (at most PAUSE_WAIT).
"""
import json
import os
import socket
import subprocess
import sys
import threading
import time

from . import human

PAUSE_WAIT = 1.0  # an editor that does not answer must never hold up an agent cell for long
MAX_STARTS = 5


class EditorLink(object):
    """One running editor process and the worker's end of its socketpair."""

    def __init__(self, proc, sock):
        self.proc = proc
        self.sock = sock
        self.buf = b""
        self.lock = threading.Lock()
        self.paused = threading.Event()
        self.pause_n = 0

    def send(self, msg):
        data = (json.dumps(msg) + "\n").encode()
        with self.lock:
            try:
                self.sock.sendall(data)
                return True
            except OSError:
                return False


class Editors(object):
    def __init__(self, term):
        self.term = term
        self.w = term.w
        self.link = None
        self.lock = threading.Lock()
        self.starts = []

    # -- requests from the worker's threads ----------------------------------------------------
    def send(self, msg):
        ed = self.link
        return ed is not None and ed.send(msg)

    def pause(self):
        """Before an agent cell writes: the editor clears its prompt line and stops drawing."""
        ed = self.link
        if ed is None:
            return
        ed.pause_n += 1  # numbered: a late answer to a timed-out pause must not satisfy the next
        ed.paused.clear()
        if ed.send({"t": "pause", "n": ed.pause_n}):
            ed.paused.wait(PAUSE_WAIT)

    def ensure(self):
        with self.lock:
            ed = self.link
            if ed is not None and ed.proc.poll() is None:
                return
            now = time.time()
            self.starts = [t for t in self.starts if now - t < 30]
            if len(self.starts) >= MAX_STARTS:
                return
            self.starts.append(now)
            try:
                self.link = self._spawn()
            except OSError as e:
                self.term.write("pythond: cannot start the line editor: %s\n" % e)
                return
        self.term.poke()  # the relay thread must add the new socket to its select

    def _spawn(self):
        parent, child = socket.socketpair()
        cfg = {
            "name": self.w.name,
            "fd": child.fileno(),
            "history": os.path.join(self.w.config["session_dir"], "repl_history"),
        }
        env = dict(os.environ)
        for k in ("LINES", "COLUMNS", "PYTHOND_WORKER"):
            env.pop(k, None)  # readline would prefer these over the PTY's real size
        if env.get("TERM", "dumb") == "dumb":
            env["TERM"] = "xterm-256color"
        env["PYTHOND_EDITOR"] = json.dumps(cfg)
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "editor.py")
        slave = self.term.slave
        try:
            proc = subprocess.Popen([sys.executable, "-I", path], stdin=slave, stdout=slave, stderr=slave,
                                    pass_fds=(child.fileno(),), start_new_session=True, env=env, close_fds=True)
        finally:
            child.close()
        return EditorLink(proc, parent)

    # -- the relay thread ----------------------------------------------------------------------
    def read(self, ed):
        try:
            data = ed.sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._gone(ed)
            return
        ed.buf += data
        while b"\n" in ed.buf:
            line, ed.buf = ed.buf.split(b"\n", 1)
            try:
                self._handle(ed, json.loads(line))
            except Exception as e:  # a bad message must never stop the relay
                self.term.write("pythond: editor message failed: %s: %s\n" % (type(e).__name__, e))

    def _handle(self, ed, msg):
        t = msg.get("t")
        if t == "exec":
            code = msg.get("code", "")
            self.w.post(lambda: human.run_block(self.w, self.term, code))
        elif t == "complete":
            ed.send({"t": "matches", "id": msg.get("id"), "m": human.complete(self.w.ns, msg.get("text", ""))})
        elif t == "int":
            human.interrupt(self.w)
        elif t == "paused":
            if msg.get("n") == ed.pause_n:
                ed.paused.set()
        elif t == "detach":
            self.term.detach_last()

    def _gone(self, ed):
        with self.lock:
            if self.link is ed:
                self.link = None
        try:
            ed.sock.close()
        except OSError:
            pass
        if ed.proc.poll() is None:
            ed.proc.kill()
        ed.proc.wait()
        ed.paused.set()
        if self.term.viewer_count():
            self.term.write("\npythond: the line editor exited; starting a new one\n")
            self.ensure()
