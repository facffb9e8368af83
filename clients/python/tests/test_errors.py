"""Reply classification without a daemon: both error forms give the same exception and code."""
import pytest

from pythond import errors
from pythond._proto import RECV, SEND, check_name, parse_ls, streamed

CASES = [
    ("no session 'x' -- create it first with: new x", errors.NoSession),
    ("session 'x' already exists", errors.SessionExists),
    ("session 'x' died during the cell (exited with code 3)", errors.SessionDead),
    ("auth failed", errors.AuthFailed),
    ("invalid session name", errors.InvalidName),
    ("usage: poll <name> [cell_id]", errors.UsageError),
    ("cell abc is still running after --timeout 1s", errors.Timeout),
]


@pytest.mark.parametrize("message,cls", CASES)
def test_both_forms(message, cls):
    for reply in ("ERR " + message, "ERR %s: %s" % (cls.code, message)):
        e = errors.from_reply(reply)
        assert type(e) is cls and e.code == cls.code and str(e) == message


def test_unknown_cell_and_unknown_things():
    assert errors.classify('ERR {"cell_id":"abc","status":"error","output":"unknown cell"}')[0] == "unknown_cell"
    assert errors.classify("ERR something new") == ("internal", "something new")
    assert errors.classify("ERR nonsense_code: x")[0] == "internal"


def drive(op, replies):
    """Runs a protocol op against canned replies; returns (sent frames, outputs, result)."""
    sent, outputs = [], []
    replies = list(replies)
    try:
        action = next(op)
        while True:
            if action[0] == SEND:
                sent.append(action[1])
                action = op.send(None)
            elif action[0] == RECV:
                action = op.send(replies.pop(0))
            else:
                outputs.append(action[1])
                action = op.send(None)
    except StopIteration as e:
        return sent, outputs, e.value


def test_streamed_run_both_error_forms_and_split_utf8():
    snow = "\u2603".encode()
    sent, out, r = drive(streamed("run", ["w"], "print(1)"), ["CELL abc", b"a" + snow[:1], snow[1:] + b"\n", "OK"])
    assert sent == ["run w\nprint(1)"] and "".join(out) == "a\u2603\n" and r.ok and r.cell_id == "abc"
    for final in ("ERR execution failed\nTraceback: boom", "ERR execution_failed: execution failed\nTraceback: boom"):
        _, _, r = drive(streamed("run", ["w"], "x"), ["CELL abc", final])
        assert not r.ok and r.error == "Traceback: boom"
    with pytest.raises(errors.SessionDead):
        drive(streamed("run", ["w"], "x"), ["CELL abc", "ERR session_dead: session 'w' died during the cell (x)"])


def test_names_and_ls():
    assert check_name("ok_name-1") == "ok_name-1"
    assert check_name("srv/work") == "srv/work"  # a session behind a proxy or node: the daemon decides
    for bad in ("", "a b", "a\nb", "x" * 201):
        with pytest.raises(errors.InvalidName):
            check_name(bad)
    got = parse_ls("  work: alive pid=12 (pty)\n  gone: dead (exited with code 3)\n  srv: -> h:1 tls (remote)")
    assert [(s.name, s.state, s.pid, s.detail) for s in got] == [
        ("work", "alive", 12, None), ("gone", "dead", None, "exited with code 3"), ("srv", "remote", None, "h:1 tls")]


def test_a_connection_with_codes_reads_the_tag_as_the_code():
    coded = errors.CodedReply("ERR usage: --timeout takes seconds")
    assert errors.classify(coded) == ("usage", "--timeout takes seconds")
    assert errors.classify("ERR usage: --timeout takes seconds") == ("usage", "usage: --timeout takes seconds")
