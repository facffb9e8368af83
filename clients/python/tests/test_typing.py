"""The package is typed: mypy --strict finds nothing (py.typed ships it to users' checkers)."""
import os
import subprocess
import sys

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src", "pythond")
SANDD = os.path.join(os.path.dirname(SRC), "sandd")


def test_mypy_strict(tmp_path):
    r = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--cache-dir", str(tmp_path), SRC, SANDD],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
