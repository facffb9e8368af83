"""The execution rules of a cell, as in the Python REPL.

If the cell ends in an expression, the statements before it run and the expression's value is
shown: str raw, anything else repr, None nothing; `_` is set to it. Top-level `await` works (the
session keeps one event loop). Tracebacks show user frames only: frames of this package are cut.
"""
import ast
import asyncio
import linecache
import os
import sys
import traceback
import types

from . import capture

_PKG_DIR = os.path.dirname(os.path.abspath(__file__))
_ASYNC_FLAG = getattr(ast, "PyCF_ALLOW_TOP_LEVEL_AWAIT", 0)
_CO_COROUTINE = 0x0080
_loop = None


class Result(object):
    __slots__ = ("ok", "error", "exit_code", "value_text")

    def __init__(self):
        self.ok = True
        self.error = ""
        self.exit_code = None
        self.value_text = None


def _register_source(filename, code):
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)


def _run_code(code_obj, ns):
    value = eval(code_obj, ns)
    if code_obj.co_flags & _CO_COROUTINE:
        global _loop
        if _loop is None or _loop.is_closed():
            _loop = asyncio.new_event_loop()
        value = _loop.run_until_complete(value)
    return value


def _compile_eval(source, tree, filename):
    """The cell's last expression. A cell that is one expression compiles from its source (twice
    as fast as from the tree), unless eval mode refuses what exec mode took (`x + 1;`)."""
    if source is not None:
        try:
            return compile(source, filename, "eval", flags=_ASYNC_FLAG)
        except SyntaxError:
            pass
    return compile(tree, filename, "eval", flags=_ASYNC_FLAG)


def _compile_fresh(code, filename):
    """(statements, last expression): the code objects of a cell, either may be None."""
    if code[:1] not in ("", " ", "\t", "\n", "\r", "\f"):
        try:  # the common quick cell, one expression: one compile, no syntax tree
            return None, compile(code, filename, "eval", flags=_ASYNC_FLAG)
        except SyntaxError:
            pass
    tree = ast.parse(code, filename, "exec")
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    body = None
    if tree.body:
        # A cell of statements only compiles from its source: twice as fast as from the tree.
        body = compile(code if last is None else tree, filename, "exec", flags=_ASYNC_FLAG)
    tail = _compile_eval(code if not tree.body else None, last, filename) if last is not None else None
    return body, tail


# Cells sent again and again (a loop polling `len(rows)`, `x + 1`) compile once: source -> the
# code objects, given the new cell's file name on reuse (0.5 us instead of 7-20 us). Only small
# cells that define no functions or classes (their nested code would keep the old file name).
_compiled = {}
COMPILED_MAX = 512
COMPILED_SOURCE_MAX = 2048


def _compile_cell(code, filename):
    """(statements, last expression, keep): keep is True if the cell makes code that outlives it."""
    hit = _compiled.get(code)
    if hit is not None:  # never a cell that defines code
        body, tail = hit
        return (body.replace(co_filename=filename) if body is not None else None,
                tail.replace(co_filename=filename) if tail is not None else None, False)
    body, tail = _compile_fresh(code, filename)
    keep = _defines_code(body) or _defines_code(tail)
    if len(code) <= COMPILED_SOURCE_MAX and not keep:
        if len(_compiled) >= COMPILED_MAX:
            _compiled.clear()
        _compiled[code] = (body, tail)
    return body, tail, keep


def _defines_code(co):
    """True if code objects made by co can outlive the cell (functions, classes, lambdas...)."""
    return co is not None and any(isinstance(c, types.CodeType) for c in co.co_consts)


def _show(value, ns):
    if value is not None:
        ns["_"] = value
        sys.stdout.write((value if isinstance(value, str) else repr(value)) + "\n")


def execute(code, ns, filename):
    """Runs code in ns. Returns a Result; output goes to sys.stdout as the REPL would show it.

    The source goes into linecache (for tracebacks and inspect) when the cell fails, or when it
    made code that outlives it (a function); a cell like `x + 1` leaves nothing behind."""
    result = Result()
    keep = False
    capture.restore_streams()
    try:
        body, tail, keep = _compile_cell(code, filename)
        if keep:
            _register_source(filename, code)
        if body is not None:
            _run_code(body, ns)
        if tail is not None:
            _show(_run_code(tail, ns), ns)
    except SystemExit as e:
        result.ok = False
        code_ = e.code
        result.exit_code = code_
        result.error = "exit(%s)" % ("0" if code_ is None else code_)
    except BaseException as e:  # noqa: B902 - KeyboardInterrupt is a cell result here
        result.ok = False
        if not keep:
            _register_source(filename, code)
        result.error = format_exception(e)
    return result


def _is_internal(tb):
    f = tb.tb_frame.f_code.co_filename
    return os.path.dirname(os.path.abspath(f)) == _PKG_DIR if not f.startswith("<") else False


def format_exception(e):
    """The traceback without pythond's own frames (leading and trailing ones)."""
    tb = e.__traceback__
    while tb is not None and _is_internal(tb):
        tb = tb.tb_next
    frames = []
    t = tb
    while t is not None:
        frames.append(t)
        t = t.tb_next
    while frames and _is_internal(frames[-1]):
        frames.pop()
    if isinstance(e, SyntaxError) or not frames:
        lines = traceback.format_exception_only(type(e), e)
        if not isinstance(e, SyntaxError):
            lines = ["Traceback (most recent call last):\n"] + lines if frames else lines
    else:
        # Rebuild a chain of just the kept frames.
        tb_new = None
        for t in reversed(frames):
            tb_new = types.TracebackType(tb_new, t.tb_frame, t.tb_lasti, t.tb_lineno)
        lines = traceback.format_exception(type(e), e, tb_new)
    return "".join(lines).rstrip("\n")
