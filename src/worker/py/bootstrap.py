"""pythond worker entry point (embedded in the pythond binary; runs on Python 3.8+).

The daemon starts this file in a new process session with PYTHOND_WORKER set to a JSON object
(name, sock, record, secret, session_dir, cwd, version). The worker:
  1. listens on its own 0600 Unix socket and writes its record (pid, python, secret...) beside it;
  2. tells the daemon it is ready on its original stdout, then points fds 1/2 at the capture pipe,
     so it keeps no pipe to the daemon and outlives it;
  3. serves daemon connections on an IO thread, and runs sync cells on the main thread, one at a
     time (only the main thread can be interrupted reliably by SIGINT: see DESIGN.md decision 3).
"""
import json
import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _here)
from _pythond import server  # noqa: E402

del sys.path[0]
if sys.path and os.path.abspath(sys.path[0] or ".") == _here:
    sys.path[0] = ""  # like the interactive interpreter: imports from the current directory

if __name__ == "__main__":
    config = json.loads(os.environ.pop("PYTHOND_WORKER"))
    server.main(config)
