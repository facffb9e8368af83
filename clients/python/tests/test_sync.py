"""The synchronous Client against the real binary: every operation, streaming, errors with codes."""
import threading
import time

import pytest

import pythond
from pythond import Client, ExecutionFailed, NoSession, SessionDead, SessionExists, Timeout, UnknownCell


def test_new_run_result_fields(client):
    s = client.new("sync1")
    r = s.run("x = 41\nprint(x + 1)")
    assert r.ok and r.output == "42\n" and r.error == ""
    assert len(r.cell_id) == 12
    assert s.run("x + 1").output == "42\n"  # the REPL rule: a final expression is printed


def test_failing_cell_is_a_result_and_raise_for_error(client):
    s = client.new("sync2")
    r = s.run("print('before')\n1/0")
    assert not r.ok
    assert r.output == "before\n"
    assert "ZeroDivisionError" in r.error and r.traceback == r.error
    with pytest.raises(ExecutionFailed) as ei:
        r.raise_for_error()
    assert ei.value.code == "execution_failed" and "ZeroDivisionError" in ei.value.traceback
    assert ei.value.cell_id == r.cell_id and ei.value.output == "before\n"
    assert s.run("print(1)").raise_for_error().output == "1\n"


def test_streaming_callback_and_iterator(client):
    s = client.new("sync3")
    pieces = []
    code = "import time\nfor i in range(3):\n    print(i, flush=True); time.sleep(0.06)"
    r = s.run(code, on_output=pieces.append)
    assert "".join(pieces) == "0\n1\n2\n" and len(pieces) > 1  # as produced, not at the end
    assert r.output == "0\n1\n2\n"
    st = s.stream(code)
    got = list(st)
    assert "".join(got) == "0\n1\n2\n" and len(got) > 1
    assert st.result is not None and st.result.ok
    # A stream abandoned early leaves the connection in step for the next call.
    for piece in s.stream(code):
        break
    assert s.run("print('next')").output == "next\n"


def test_timeout_interrupts_and_session_lives(client):
    s = client.new("sync4")
    r = s.run("import time\nwhile True: time.sleep(0.05)", timeout=0.3)
    assert not r.ok and "KeyboardInterrupt" in r.error
    assert s.run("print('alive')").output == "alive\n"


def test_input_fails_fast(client):
    s = client.new("sync5")
    r = s.run("input()")
    assert not r.ok and "input() is not available" in r.error


def test_fire_poll_wait_fork_interrupt(client):
    s = client.new("sync6")
    cid = s.fire("import time\ntime.sleep(0.2)\nprint('fired')\ny = 7")
    st = s.poll(cid)
    assert st.cell_id == cid and st.status in ("running", "done")
    w = s.wait(cid)
    assert w.ok and w.output == "fired" and w.cell_id == cid
    assert s.poll(cid).status == "done"
    f = s.fork("z = y * 6")
    assert s.wait(f).ok
    assert s.run("print(z)").output == "42\n"
    long = s.fire("import time\nprint('looping', flush=True)\nwhile True: time.sleep(0.02)")
    # Interrupt once the loop runs (an interrupt is best effort for fire threads: one that lands
    # before the thread reaches the cell's code is not promised to stop it).
    while "looping" not in (s.poll(long).output or ""):
        time.sleep(0.01)
    assert "1 thread" in s.interrupt()
    assert not s.wait(long, timeout=30).ok
    with pytest.raises(Timeout) as ei:
        s.wait(s.fire("import time; time.sleep(3)"), timeout=0.1)
    assert ei.value.code == "timeout" and isinstance(ei.value, TimeoutError)
    s.interrupt()


def test_vars_complete_status_ls_hello(client):
    s = client.new("sync7")
    s.run("alpha = 1\nbeta = 2")
    assert {"alpha", "beta"} <= set(s.vars())
    assert "alpha" in s.complete("alp")
    st = s.status()
    assert st["state"] == "idle" and st["pid"] > 0
    assert pythond.SessionInfo("sync7", "alive", st["pid"]) in client.ls()
    assert client.hello()["protocol"] >= 1


def test_errors_carry_stable_codes(client, daemon):
    with pytest.raises(NoSession) as ei:
        client.session("nope").run("1")
    assert ei.value.code == "no_session" and "nope" in str(ei.value)
    client.new("sync8")
    with pytest.raises(SessionExists):
        client.new("sync8")
    with pytest.raises(pythond.InvalidName):
        client.session("Bad Name")
    with pytest.raises(pythond.InvalidName):  # the daemon's word for it, classified
        client.session("UPPER").status()
    with pytest.raises(UnknownCell):
        client.session("sync8").poll("000000000000")
    with pytest.raises(pythond.DaemonUnreachable) as ei:
        Client(socket=daemon.sock + ".none")
    assert "no daemon at" in str(ei.value) and isinstance(ei.value, ConnectionError)


def test_session_dies_mid_cell_then_replace_and_kill(client):
    s = client.new("dies")
    with pytest.raises(SessionDead) as ei:
        s.run("import os; os._exit(3)")
    assert "exited with code 3" in str(ei.value)
    dead = [x for x in client.ls() if x.name == "dies"][0]
    assert dead.state == "dead"
    with pytest.raises(SessionDead):
        s.run("1")
    client.new("dies", replace=True)
    assert s.run("1 + 1").output == "2\n"
    s.kill()
    with pytest.raises(NoSession):
        s.status()


def test_environment_chooses_the_socket_as_pysh(daemon, monkeypatch):
    monkeypatch.setenv("PYTHOND_SOCK", daemon.sock)
    monkeypatch.delenv("PYTHOND_HOST", raising=False)
    with Client() as c:
        assert c.endpoint.path == daemon.sock
        assert c.new("envsock").run("print('hi')").output == "hi\n"


def test_threads_share_one_client(client):
    s = client.new("threads")
    results = {}

    def work(i):
        results[i] = s.run("print(%d)" % i).output

    ts = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert results == {i: "%d\n" % i for i in range(6)}


def test_cwd_python_and_replace_options(client, tmp_path):
    import sys

    s = client.new("opts", cwd=str(tmp_path / "."), python=sys.executable)
    assert s.run("import os; print(os.getcwd())").output.strip() == str(tmp_path)
    assert s.status()["python"] == "%d.%d.%d" % sys.version_info[:3]
    s.run("kept = 1")
    client.new("opts", replace=True)
    assert "kept" not in s.vars()


def test_a_failing_callback_raises_after_the_cell_and_the_client_stays_usable(client):
    s = client.new("cb")

    def boom(piece):
        raise ValueError("callback failed")

    with pytest.raises(ValueError):
        s.run("for i in range(3): print(i)", on_output=boom)
    assert s.run("print('in step')").output == "in step\n"
