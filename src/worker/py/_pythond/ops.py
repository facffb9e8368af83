"""Requests from the daemon, handled on the IO thread (never blocking it: waits get a thread)."""
import ctypes
import hmac
import os
import rlcompleter
import signal
import sys
import threading
import time

from . import capture, cells, execute, forking, human, protocol, terminal
from .protocol import WORKER_PROTOCOL
from .wire import Conn  # noqa: F401 - re-exported for server.py

MAX_COMPLETIONS = 200


def reply(conn, rid, data=None, ok=True, **extra):
    h = {"op": "reply", "rid": rid, "ok": ok}
    h.update(extra)
    if data is not None:
        h["data"] = data
    conn.send(h)


def fail(conn, rid, code, message):
    reply(conn, rid, ok=False, code=code, error=message)


def send_end(cell, sub):
    """The end of a cell to sub, (conn, rid) as Cell.finish returned it."""
    if sub is None:
        return
    if cell.status == "done" and type(sub[1]) is int:  # every quick cell: no JSON encoder needed
        sub[0].send(('{"op":"end","rid":%d,"cell":"%s","ok":true,"error":"","exit_code":null}'
                     % (sub[1], cell.id)).encode())
    else:
        sub[0].send({"op": "end", "rid": sub[1], "cell": cell.id, "ok": cell.status == "done",
                     "error": cell.error, "exit_code": _jsonable(cell.exit_code)})


def _jsonable(v):
    return v if v is None or isinstance(v, (int, str)) else str(v)


def handle(w, conn, h, body):
    op = h.get("op")
    rid = h.get("rid")
    if not conn.authed:
        if op == "hello" and hmac.compare_digest(str(h.get("secret", "")), w.secret):
            conn.authed = True
            if h.get("lane") == "run":
                conn.lane = "run"  # read by the main thread from now on (server.py)
            conn.send({"op": "hello", "ok": True, "v": WORKER_PROTOCOL, "pid": os.getpid(), "name": w.name,
                       "lanes": ["run"]})
        else:
            conn.send({"op": "hello", "ok": False, "v": WORKER_PROTOCOL, "error": "bad secret"})
            conn.closed = True
            conn.sock.shutdown(2)
        return
    if op != "ack":
        w.last_activity = time.time()
    fn = w.handlers.get(op)
    if fn is None:
        fail(conn, rid, "unknown_command", "worker: unknown op %r" % op)
        return
    fn(w, conn, rid, h, body)


def op_run(w, conn, rid, h, body):
    # A run on this connection (a daemon that opened no run lane) waits for the main thread.
    w.post(lambda: w.run_frame(conn, rid, h, body))


def op_ack(w, conn, rid, h, body):
    cell = w.cells.get(h.get("cell"))
    if cell is not None:
        cell.ack(int(h.get("n", 0)))


def op_fire(w, conn, rid, h, body):
    cell = cells.Cell("fire", body.decode("utf-8", "replace"))
    w.cells.add(cell)

    def run():
        capture.bind_thread(cell.out)
        w.capture.register(cell.out)
        try:
            result = _run_interruptible(w, cell)
        finally:
            capture.bind_thread(None)
            w.capture.unregister(cell.out)
        cell.finish(result, w.history)
        human.async_note(w, cell, "end")

    human.async_note(w, cell, "start")
    threading.Thread(target=run, name="pythond-fire-" + cell.id, daemon=True).start()
    reply(conn, rid, {"cell_id": cell.id, "status": "fired"})


def _run_interruptible(w, cell):
    """A fire cell's code, interruptible from `int` at any moment of its life.

    An interrupt is an exception raised in the cell's thread (PyThreadState_SetAsyncExc), which
    only works once the thread runs the cell's code and must not land in ours. So `int` sets
    cell.int_asked and raises only while cell.in_code; an interrupt that comes before (the thread
    not started yet) is found here and ends the cell at once; one raised as the code ends is
    cleared before it can land in the clean-up."""
    with cell.int_lock:
        if cell.int_asked:
            result = execute.Result()
            result.ok = False
            result.error = "KeyboardInterrupt"
            return result
        cell.thread_ident = threading.get_ident()
        cell.in_code = True
    try:
        result = execute.execute(cell.code, w.ns, "<cell-%s>" % cell.id)
    except KeyboardInterrupt:  # landed between execute's own statements
        result = execute.Result()
        result.ok = False
        result.error = "KeyboardInterrupt"
    with cell.int_lock:
        cell.in_code = False
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(cell.thread_ident), None)
    return result


def _int_thread(cell):
    """Interrupts a fire cell (see _run_interruptible); False if it has already ended."""
    with cell.int_lock:
        if cell.status != "running":
            return False
        cell.int_asked = True
        if cell.in_code:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(cell.thread_ident), ctypes.py_object(KeyboardInterrupt))
    return True


def op_fork(w, conn, rid, h, body):
    if not hasattr(os, "fork"):
        fail(conn, rid, "usage", "fork cells need a POSIX system (use fire)")
        return
    cell = cells.Cell("fork", body.decode("utf-8", "replace"))
    w.cells.add(cell)
    human.async_note(w, cell, "start")
    forking.start(w, cell)
    reply(conn, rid, {"cell_id": cell.id, "status": "forked"})


def op_poll(w, conn, rid, h, body):
    cid = h.get("cell")
    cell = w.cells.get(cid) if cid else w.cells.latest(("fire", "fork"))
    if cell is None:
        if cid:
            reply(conn, rid, {"cell_id": cid, "status": "error", "output": "unknown cell"}, ok=False, code="unknown_cell")
        else:
            reply(conn, rid, {"status": "idle"})
        return
    reply(conn, rid, cell.poll_json())


def op_wait(w, conn, rid, h, body):
    cell = w.cells.get(h.get("cell"))
    if cell is None:
        reply(conn, rid, {"cell_id": h.get("cell"), "status": "error", "output": "unknown cell"}, ok=False, code="unknown_cell")
        return
    timeout = h.get("timeout")

    def waiter():
        finished = cell.wait_done(timeout)
        d = cell.poll_json()
        if not finished:
            d["timed_out"] = True
        d["out"] = cell.output_text()
        d["traceback"] = cell.error
        reply(conn, rid, d)

    threading.Thread(target=waiter, name="pythond-wait", daemon=True).start()


def op_status(w, conn, rid, h, body):
    running = [c.id for c in w.cells.running()]
    reply(conn, rid, {
        "state": "running" if running else "idle",
        "running": running,
        "vars": len(public_names(w.ns)),
        "cells": w.cells.count,
        "pid": os.getpid(),
        "python": w.config.get("python_version") or "%d.%d.%d" % tuple(sys.version_info[:3]),
        "cwd": os.getcwd(),
        "uptime": round(time.time() - w.started, 1),
        "history": w.history.problem or "ok",
    })


def public_names(ns):
    for _ in range(5):
        try:
            return [k for k in list(ns.keys()) if isinstance(k, str) and not k.startswith("_")]
        except RuntimeError:
            continue  # the namespace changed under us (a cell is running); try again
    return []


def op_vars(w, conn, rid, h, body):
    reply(conn, rid, {"vars": public_names(w.ns)})


def op_complete(w, conn, rid, h, body):
    text = body.decode("utf-8", "replace")
    completer = rlcompleter.Completer(w.ns)
    matches = []
    try:
        state = 0
        while len(matches) < MAX_COMPLETIONS:
            m = completer.complete(text, state)
            if m is None:
                break
            if m not in matches:
                matches.append(m)
            state += 1
    except Exception:
        pass  # rlcompleter evaluates attribute chains; a failing property means no more matches
    reply(conn, rid, {"matches": matches})


def op_int(w, conn, rid, h, body):
    if h.get("cell"):
        return _int_cell(w, conn, rid, h["cell"])
    parts = []
    if w.sync_cell is not None:
        os.kill(os.getpid(), signal.SIGINT)
        parts.append("1 run (interrupted)")
    threads = [c for c in w.cells.running() if c.kind == "fire" and _int_thread(c)]
    if threads:
        parts.append("%d thread%s (best-effort)" % (len(threads), "" if len(threads) == 1 else "s"))
    killed = forking.kill_all()
    if killed:
        parts.append("%d process%s (killed)" % (killed, "" if killed == 1 else "es"))
    if parts:
        reply(conn, rid, "OK int %s: %s" % (w.name, ", ".join(parts)))
    else:
        reply(conn, rid, "OK no running cells in %s" % w.name)


def _int_cell(w, conn, rid, cid):
    """`int <name> <cell_id>`: that cell only (pysh run's Ctrl-C must not kill the forks)."""
    cell = w.cells.get(cid)
    if cell is None:
        fail(conn, rid, "unknown_cell", "no cell %s in %s" % (cid, w.name))
        return
    if cell.status != "running":
        reply(conn, rid, "OK cell %s is not running (%s)" % (cid, cell.status))
        return
    if w.sync_cell is cell:
        os.kill(os.getpid(), signal.SIGINT)
        what = "interrupted"
    elif cell.kind == "fire" and _int_thread(cell):
        what = "interrupted (best-effort)"
    elif cell.kind == "fork" and forking.kill_cell(cell):
        what = "killed"
    else:
        reply(conn, rid, "OK cell %s is not running yet" % cid)
        return
    reply(conn, rid, "OK int %s: cell %s %s" % (w.name, cid, what))


def op_claim(w, conn, rid, h, body):
    if not w.config.get("spare"):
        fail(conn, rid, "usage", "worker: only a spare can be claimed")
        return
    w.claim(h.get("session") or {})
    reply(conn, rid, {"pid": os.getpid()})


CORE_HANDLERS = {
    "claim": op_claim,
    "run": op_run,
    "ack": op_ack,
    "fire": op_fire,
    "fork": op_fork,
    "poll": op_poll,
    "wait": op_wait,
    "status": op_status,
    "vars": op_vars,
    "complete": op_complete,
    "int": op_int,
}


def handlers_for(worker):
    """The ops this worker serves, built here only: the terminal's when it has a PTY (a worker
    without one answers them `unknown op`, which the daemon explains)."""
    handlers = dict(CORE_HANDLERS)
    if getattr(worker, "terminal", None) is not None:
        handlers.update(terminal.HANDLERS)
    assert set(CORE_HANDLERS) == set(protocol.CORE_OPS) and set(terminal.HANDLERS) == set(protocol.TERMINAL_OPS)
    return handlers
