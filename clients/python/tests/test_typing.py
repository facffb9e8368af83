"""The package is typed: mypy --strict finds nothing (py.typed ships it to users' checkers)."""
import os
import subprocess
import sys

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src", "pythond")


def test_mypy_strict(tmp_path):
    r = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--cache-dir", str(tmp_path), SRC],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
