"""The fleet from Python against a real hub and real `pythond join` nodes (conftest.Fleet): nodes,
wait_for_node, sh (bytes exact, exit codes, cwd/env/stdin, timeout), streaming, jobs, fan-out,
sessions on nodes, and bad input."""
import hashlib
import os
import subprocess
import sys

import pytest

from pythond import (CommandFailed, InvalidName, NodeOffline, NoJob, NoSuchNode, ShResult, Timeout, UsageError)


def test_nodes_are_typed_records(hub_client, fleet):
    nodes = {n.id: n for n in hub_client.nodes()}
    assert {"n1", "n2"} <= set(nodes)
    n1 = nodes["n1"]
    assert n1.online and n1.state == "online"
    assert n1.labels == {"role": "web", "env": "prod"}
    assert n1.os == sys.platform.replace("linux", "linux") and n1.arch and n1.version
    assert n1.hostname and n1.address.startswith("127.0.0.1")
    assert n1.since and "T" in n1.since
    assert hub_client.node("n2").labels["env"] == "dev"
    with pytest.raises(NoSuchNode) as ei:
        hub_client.node("nope")
    assert str(ei.value).startswith("no node 'nope' -- nodes: ") and "n1" in str(ei.value)


def test_wait_for_node(hub_client):
    assert hub_client.wait_for_node("n1", timeout=5).id == "n1"
    with pytest.raises(Timeout) as ei:
        hub_client.wait_for_node("not-joined", timeout=0.3)
    msg = str(ei.value)
    assert "node 'not-joined' did not come online within 0.3s" in msg and "pyctl join-token" in msg
    assert ei.value.code == "timeout" and isinstance(ei.value, TimeoutError)


def test_sh_bytes_exact_and_exit_code(hub_client):
    r = hub_client.sh("n1", "printf 'a\\377\\000b'; printf 'e\\376' >&2; exit 3")
    assert r.stdout == b"a\xff\x00b" and r.stderr == b"e\xfe"
    assert r.exit_code == 3 and r.code == 3 and not r.ok and r.status == "failed"
    assert r.signal is None and not r.timed_out and r.duration_ms >= 0 and r.id
    assert r.stdout_text == "a\ufffd\x00b" and r.text == r.stdout_text
    with pytest.raises(CommandFailed) as ei:
        r.check()
    assert "exited 3" in str(ei.value) and ei.value.result is r


def test_sh_cwd_env_stdin(hub_client, fleet):
    r = hub_client.sh("n1", 'echo "$A" "$(pwd)" "$HOME"', cwd="/tmp", env={"A": "b c"})
    assert r.stdout == ("b c /tmp %s\n" % fleet.n1.home).encode()
    data = os.urandom(3 << 20)
    r = hub_client.sh("n1", "sha256sum", stdin=data)
    assert r.stdout.split()[0].decode() == hashlib.sha256(data).hexdigest()
    r = hub_client.sh("n1", "wc -c", stdin=iter([b"ab", b"cd"]))
    assert r.stdout.strip() == b"4"
    assert hub_client.sh("n1", "cat", stdin="é").stdout == "é".encode()
    r = hub_client.sh("n1", "head -c 1", stdin=os.urandom(16 << 20))  # exits without reading it all
    assert len(r.stdout) == 1 and r.exit_code == 0
    r = hub_client.sh("n1", "no-such-command-here")
    assert r.exit_code == 127 and b"not found" in r.stderr


def test_sh_timeout_is_a_result(hub_client):
    r = hub_client.sh("n1", "echo started; sleep 30", timeout=0.5)
    assert r.timed_out and r.exit_code == 124 and r.stdout == b"started\n"
    assert "timed out" in r.describe()


def test_sh_killed_by_a_signal(hub_client):
    r = hub_client.sh("n1", "kill -9 $$")
    assert r.signal == "SIGKILL" and r.exit_code == 137 and r.code is None


def test_sh_big_output_exact(hub_client):
    size = 24 << 20
    r = hub_client.sh("n1", "head -c %d /dev/urandom | tee /tmp/pyfleet-big-%d | sha256sum >&2" % (size, os.getpid()))
    want = r.stderr.split()[0].decode()
    r = hub_client.sh("n1", "cat /tmp/pyfleet-big-%d; rm /tmp/pyfleet-big-%d" % (os.getpid(), os.getpid()))
    assert len(r.stdout) == size and hashlib.sha256(r.stdout).hexdigest() == want


def test_sh_streaming_bounded_memory(fleet):
    """64 MiB through callbacks: the client's peak RSS grows by far less than that (credits)."""
    script = (
        "import resource, sys\n"
        "from pythond import Client\n"
        "c = Client(socket=sys.argv[1])\n"
        "c.sh('n1', 'true')\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "n = [0]\n"
        "r = c.sh('n1', 'head -c %d /dev/zero', on_stdout=lambda b: n.__setitem__(0, n[0] + len(b)))\n"
        "print(n[0], r.exit_code, len(r.stdout), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base)\n" % (64 << 20))
    p = subprocess.run([sys.executable, "-c", script, fleet.hub.sock], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PYTHONPATH=os.path.join(os.path.dirname(__file__), "..", "src")))
    assert p.returncode == 0, p.stderr
    n, code, kept, grew_kib = (int(x) for x in p.stdout.split())
    assert (n, code, kept) == (64 << 20, 0, 0)
    assert grew_kib < 32 * 1024, "peak RSS grew by %d KiB streaming 64 MiB" % grew_kib


def test_sh_stream_iterator(hub_client):
    s = hub_client.sh_stream("n1", "echo one; echo two >&2; echo three")
    got = list(s)
    assert b"".join(d for fd, d in got if fd == 1) == b"one\nthree\n"
    assert b"".join(d for fd, d in got if fd == 2) == b"two\n"
    assert s.result is not None and s.result.exit_code == 0 and s.id == s.result.id


def test_detached_job_and_job_calls(hub_client):
    jid = hub_client.sh_detached("n1", "echo out; echo err >&2; sleep 0.3; echo done; exit 5")
    assert jid in [j.id for j in hub_client.jobs("n1")]
    r = hub_client.job("n1", jid, wait=True)
    assert r.stdout == b"out\ndone\n" and r.stderr == b"err\n" and r.exit_code == 5 and r.id == jid
    info = hub_client.job("n1", jid)
    assert info.exit_code == 5 and info.stdout == b"out\ndone\n"
    jid = hub_client.sh_detached("n1", "sleep 30")
    assert hub_client.job("n1", jid).status == "running"
    r = hub_client.job("n1", jid, kill=True)
    assert r.signal == "SIGTERM" and r.exit_code == 143
    with pytest.raises(NoJob) as ei:
        hub_client.job("n1", "nosuchjob")
    assert "no job 'nosuchjob'" in str(ei.value)


def test_sh_many_by_selector_list_and_all(hub_client):
    rs = {r.node: r for r in hub_client.sh_many("role=web", "echo $HOME")}
    assert set(rs) == {"n1", "n2"} and all(r.ok for r in rs.values())
    assert [r.node for r in hub_client.sh_many("role=web,env=prod", "true")] == ["n1"]
    rs = {r.node: r for r in hub_client.sh_many(["n2", "n1"], "echo hi; exit 2", max_concurrency=1)}
    assert set(rs) == {"n1", "n2"} and all(r.exit_code == 2 and r.stdout == b"hi\n" for r in rs.values())
    assert all(r.status == "failed" for r in rs.values())
    assert {"n1", "n2"} <= {r.node for r in hub_client.sh_many("*", "true")}
    assert {"n1", "n2"} <= {r.node for r in hub_client.sh_many(None, "true", max_concurrency=2)}
    r = next(iter(hub_client.sh_many("env=dev", "sleep 5", timeout=0.3)))
    assert r.timed_out and r.exit_code == 124


def test_sh_many_bad_input(hub_client):
    with pytest.raises(UsageError) as ei:
        list(hub_client.sh_many("role", "true"))
    assert "invalid label" in str(ei.value)
    with pytest.raises(UsageError):
        list(hub_client.sh_many("role = web", "true"))
    with pytest.raises(NoSuchNode) as ei:
        list(hub_client.sh_many("role=nothing-has-this", "true"))
    assert "no node matches" in str(ei.value)
    with pytest.raises(NoSuchNode) as ei:
        list(hub_client.sh_many(["n1", "ghost"], "true"))
    assert "no node 'ghost' -- nodes: " in str(ei.value)
    with pytest.raises(UsageError):
        list(hub_client.sh_many("role=web", "true", max_concurrency=0))


def test_unknown_node_and_bad_input(hub_client):
    with pytest.raises(NoSuchNode) as ei:
        hub_client.sh("nope", "true")
    assert str(ei.value).startswith("no node 'nope' -- nodes: ") and ei.value.code == "no_node"
    with pytest.raises(InvalidName):
        hub_client.sh("bad node", "true")
    with pytest.raises(UsageError):
        hub_client.sh("n1", "")
    with pytest.raises(UsageError):
        hub_client.sh("n1", "true", timeout=0)
    with pytest.raises(NoSuchNode):
        hub_client.put("nope", __file__, "x")


def test_sessions_on_a_node(hub_client):
    s = hub_client.new("n1/pywork", replace=True)
    assert s.run("import os\nx = 6 * 7\nprint(x)").output == "42\n"
    again = hub_client.session("n1/pywork")
    r = again.run("print(x + 1, os.environ['HOME'])")
    assert r.ok and r.output.startswith("43 ")
    assert "x" in again.vars()
    assert not again.run("1/0").ok
    again.kill()


def test_results_are_shresults(hub_client):
    r = hub_client.sh("n2", "echo x")
    assert isinstance(r, ShResult) and r.node == "n2" and "exit_code=0" in repr(r)


def test_offline_node_is_reported(hub_client, fleet):
    """A node whose process is SIGKILLed mid-command: a clear NodeLost naming the job; then it is
    offline: sh says so, and sh_many reports it rather than skipping it."""
    from pythond import NodeLost

    n3 = fleet.add("n3", ["tier=gone"])
    hub_client.wait_for_node("n3", timeout=10)
    s = hub_client.sh_stream("n3", "echo started; sleep 30")
    pgid = None
    with pytest.raises(NodeLost) as ei:
        for fd, data in s:
            pgid = s.pid
            if data == b"started\n":
                n3.kill()
    try:
        e = ei.value
        assert e.code == "node_offline" and e.node == "n3" and e.job_id == s.id
        assert "still running there (job %s)" % s.id in str(e) and "client.job('n3', '%s', wait=True)" % s.id in str(e)
        assert isinstance(e, NodeOffline)
        with pytest.raises(NodeOffline) as ei2:
            hub_client.sh("n3", "true")
        assert "node 'n3' is offline" in str(ei2.value)
        rs = list(hub_client.sh_many("tier=gone", "true"))
        assert [(r.node, r.status) for r in rs] == [("n3", "offline")] and rs[0].since
        rs = {r.node: r for r in hub_client.sh_many(["n1", "n3"], "true")}
        assert rs["n1"].ok and rs["n3"].status == "offline" and isinstance(rs["n3"].error, NodeOffline)
        with pytest.raises(Timeout) as ei3:
            hub_client.wait_for_node("n3", timeout=0.2)
        assert "it is offline (since " in str(ei3.value)
    finally:
        if pgid:
            try:
                os.killpg(pgid, 9)  # the orphaned command of the killed node
            except OSError:
                pass


def test_fleet_calls_over_tls_from_another_machine(fleet, tmp_path, monkeypatch):
    """A client elsewhere (its own HOME, the hub's certificate pinned, the token): sh, sh_many and
    put/get each open their own TLS connection, checked against the pin."""
    from pythond import Client

    home = tmp_path / "far-home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for k in ("PYTHOND_HOST", "PYTHOND_TOKEN", "PYTHOND_TLS", "PYTHOND_SOCK"):
        monkeypatch.delenv(k, raising=False)
    r = fleet.hub.pyctl("pin", os.path.join(fleet.hub.home, ".pythond", "tls", "cert.pem"), env={"HOME": str(home)})
    assert r.returncode == 0, r.stderr
    with Client(host="127.0.0.1:%d" % fleet.hub.port, token=fleet.hub.token, tls=True) as c:
        assert c.sh("n1", "echo far").stdout == b"far\n"
        assert {r.node for r in c.sh_many("role=web", "true")} == {"n1", "n2"}
        c.write_file("n2", "far.txt", "over tls")
        assert c.read_file("n2", "far.txt") == b"over tls"
