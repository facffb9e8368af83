"""The package installs with pip, declares websockets as its only dependency, ships py.typed, and
its sources parse as Python 3.8."""
import ast
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)
SRC = os.path.join(PROJECT, "src", "pythond")


def test_sources_are_python38_syntax():
    for d in (SRC, os.path.join(PROJECT, "src", "sandd")):
        for name in sorted(os.listdir(d)):
            if name.endswith(".py"):
                with open(os.path.join(d, name)) as f:
                    ast.parse(f.read(), filename=name, feature_version=(3, 8))


def test_pip_install_builds_and_imports(tmp_path):
    # From a copy: building writes build/ and *.egg-info beside the sources.
    project = tmp_path / "project"
    shutil.copytree(PROJECT, str(project), ignore=shutil.ignore_patterns("tests", "build", "*.egg-info", "__pycache__"))
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                        "--disable-pip-version-check", "--target", str(target), str(project)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (target / "pythond" / "py.typed").exists()
    meta = [p for p in os.listdir(target) if p.startswith("pythond-") and p.endswith(".dist-info")]
    assert meta, os.listdir(target)
    with open(target / meta[0] / "METADATA") as f:
        requires = [l for l in f.read().splitlines() if l.startswith("Requires-Dist:") and "extra ==" not in l]
    assert requires == ["Requires-Dist: websockets>=13"]
    assert (target / "sandd" / "__init__.py").exists()  # the seed's `from sandd import Server`
    out = subprocess.run([sys.executable, "-c", "import pythond, sandd, sys; assert sandd.Server is pythond.sandd.Server; print(pythond.__file__)"],
                         env=dict(os.environ, PYTHONPATH=str(target)), capture_output=True, text=True)
    assert out.stdout.startswith(str(target)), out.stderr
