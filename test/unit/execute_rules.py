"""Checks of _pythond.execute, run by bootstrap.test.ts with cwd = src/worker/py."""
import io
import sys

sys.path.insert(0, ".")
from pychecks import check, done  # noqa: E402 (beside this file)
from _pythond import execute  # noqa: E402


def run(code, ns, filename="<cell-test>"):
    buf = io.StringIO()
    old = sys.stdout
    sys.stdout = buf
    try:
        r = execute.execute(code, ns, filename)
    finally:
        sys.stdout = old
    return r, buf.getvalue()


ns = {"__name__": "__main__"}
r, out = run("x = 42", ns)
check(r.ok and out == "", "assignment prints nothing")
r, out = run("x + 1", ns)
check(out == "43\n" and ns["_"] == 43, "expression value and _")
r, out = run("print('a'); 'b'", ns)
check(out == "a\nb\n", "str raw after statements")
r, out = run("None", ns)
check(out == "" and ns["_"] == "b", "None prints nothing and keeps _")
r, out = run("[1, 'x']", ns)
check(out == "[1, 'x']\n", "repr for non-str")
r, out = run("import sys; sys.exit(3)", ns)
check(not r.ok and r.error == "exit(3)" and r.exit_code == 3, "sys.exit(3)")
r, out = run("raise SystemExit", ns)
check(r.error == "exit(0)", "bare SystemExit")
r, out = run("def f():\n    raise ValueError('v')\nf()", ns)
check(not r.ok and r.error.startswith("Traceback (most recent call last):"), "traceback header")
check("_pythond" not in r.error and "execute.py" not in r.error, "no internal frames: %r" % r.error)
check('File "<cell-test>", line 3, in <module>' in r.error and "in f" in r.error, "user frames with lines")
check("    raise ValueError('v')" in r.error, "source lines shown from the cell")
r, out = run("def (:", ns)
check(not r.ok and "SyntaxError" in r.error and "Traceback" not in r.error, "syntax error without traceback")
r, out = run("import asyncio\nawait asyncio.sleep(0)\n7", ns)
check(r.ok and out == "7\n", "top-level await")
r, out = run("if True:\n    y = 1\ny", ns)
check(out == "1\n", "compound statement then expression")
r, out = run("", ns)
check(r.ok and out == "", "empty cell")
r, out = run("# only a comment", ns)
check(r.ok and out == "", "comment only")

# linecache: a cell that leaves no code behind leaves no source behind; one that defines a
# function keeps it, so a traceback from a later cell still shows the function's lines.
import linecache  # noqa: E402

before = set(linecache.cache)
r, out = run("x + 1", ns, "<cell-quick>")
r, out = run("y = x * 2\ny", ns, "<cell-quick2>")
check(r.ok and not (set(linecache.cache) - before), "quick cells add nothing to linecache")
r, out = run("def g():\n    raise KeyError('from g')", ns, "<cell-def>")
check(r.ok and "<cell-def>" in linecache.cache, "a cell defining a function keeps its source")
r, out = run("g()", ns, "<cell-call>")
check(not r.ok and "    raise KeyError('from g')" in r.error and 'File "<cell-def>", line 2, in g' in r.error,
      "a later cell's traceback shows the function's source: %r" % r.error)
r, out = run("  x", ns, "<cell-indent>")
check(not r.ok and "IndentationError" in r.error, "a leading indent is refused as by the REPL")
r, out = run("x;", ns, "<cell-semi>")
check(r.ok and out == "42\n", "an expression statement with a semicolon is shown, as at >>>")

# A cell sent again reuses its compiled code (execute._compiled), under the new cell's name.
r, out = run("1 / 0", ns, "<cell-again1>")
r, out = run("1 / 0", ns, "<cell-again2>")
check('File "<cell-again2>", line 1' in r.error and "<cell-again1>" not in r.error and "1 / 0" in r.error,
      "a repeated cell's traceback names the new cell and shows its line: %r" % r.error)
check("1 / 0" in execute._compiled, "a small cell is cached")
for i in range(3):
    r, out = run("n = globals().get('n', 0) + 1\nn", ns, "<cell-n%d>" % i)
check(out == "3\n", "a repeated cell of statements and an expression runs every time")
run("def h(): return 1", ns, "<cell-h1>")
check("def h(): return 1" not in execute._compiled, "a cell defining a function is not cached")
r, out = run("h()", ns, "<cell-h2>")
check(out == "1\n", "function from a fresh compile works")
done()
