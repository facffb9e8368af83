"""Remote daemons over TCP and TLS: host/token/tls arguments and PYTHOND_* variables, pinned
certificates from ~/.pythond/tls/trusted_servers (as pysh), and clear errors."""
import asyncio
import os
import re

import pytest

from conftest import Daemon
from pythond import AsyncClient, AuthFailed, Client


@pytest.fixture(scope="module")
def tls_daemon():
    d = Daemon(["--listen", "127.0.0.1:0", "--tls", "--show-token"])
    port = int(d.wait_for(r"listening on tls://127\.0\.0\.1:(\d+)").group(1))
    token = d.wait_for(r"token=([0-9a-f]+)").group(1)
    fp = d.wait_for(r"fingerprint: ([0-9A-F:]{95})").group(1)
    d.port, d.token, d.fingerprint = port, token, fp
    yield d
    d.close()


@pytest.fixture
def client_home(tmp_path, monkeypatch):
    """This machine: a HOME of its own (pins, client certificate), no local daemon."""
    home = tmp_path / "client-home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for k in ("PYTHOND_HOST", "PYTHOND_TOKEN", "PYTHOND_TLS", "PYTHOND_SOCK"):
        monkeypatch.delenv(k, raising=False)
    return home


def pin(d, home):
    r = d.pyctl("pin", os.path.join(d.home, ".pythond", "tls", "cert.pem"), env={"HOME": str(home)})
    assert r.returncode == 0, r.stderr


def test_nothing_pinned_says_what_to_do(tls_daemon, client_home):
    with pytest.raises(AuthFailed) as ei:
        Client(host="127.0.0.1:%d" % tls_daemon.port, token=tls_daemon.token, tls=True)
    msg = str(ei.value)
    assert "no server certificate pinned" in msg and "pyctl pin" in msg and tls_daemon.fingerprint in msg


def test_pinned_tls_with_arguments_and_environment(tls_daemon, client_home, monkeypatch):
    pin(tls_daemon, client_home)
    hp = "127.0.0.1:%d" % tls_daemon.port
    with Client(host=hp, token=tls_daemon.token, tls=True) as c:
        assert c.new("far", replace=True).run("print('over tls')").output == "over tls\n"
    monkeypatch.setenv("PYTHOND_HOST", hp)
    monkeypatch.setenv("PYTHOND_TOKEN", tls_daemon.token)
    monkeypatch.setenv("PYTHOND_TLS", "1")
    with Client() as c:
        assert c.endpoint.label() == hp + " tls"
        assert c.session("far").run("print(1)").output == "1\n"

    async def main():
        async with AsyncClient() as a:
            return (await a.session("far").run("print(2)")).output

    assert asyncio.run(main()) == "2\n"


def test_bad_token_is_auth_failed(tls_daemon, client_home):
    pin(tls_daemon, client_home)
    with pytest.raises(AuthFailed) as ei:
        Client(host="127.0.0.1:%d" % tls_daemon.port, token="0" * 64, tls=True)
    assert "rejected the token" in str(ei.value)

    async def main():
        await AsyncClient.connect(host="127.0.0.1:%d" % tls_daemon.port, token="0" * 64, tls=True)

    with pytest.raises(AuthFailed):
        asyncio.run(main())


def test_wrong_pin_is_a_mismatch(tls_daemon, client_home, tmp_path):
    other = Daemon(["--listen", "127.0.0.1:0", "--tls", "--show-token"])  # a second certificate
    try:
        other.wait_for(r"listening on tls://")
        pin(other, client_home)  # pin the wrong server's certificate
        with pytest.raises(AuthFailed) as ei:
            Client(host="127.0.0.1:%d" % tls_daemon.port, token=tls_daemon.token, tls=True)
        msg = str(ei.value)
        assert "mismatch" in msg and tls_daemon.fingerprint in msg
    finally:
        other.close()


def test_plain_client_against_tls_port_and_no_token(tls_daemon, client_home):
    with pytest.raises(Exception) as ei:
        Client(host="127.0.0.1:%d" % tls_daemon.port, token=tls_daemon.token, tls=False)
    assert re.search(r"speaks TLS", str(ei.value))
    with pytest.raises(AuthFailed) as ei:
        Client(host="127.0.0.1:%d" % tls_daemon.port)
    assert "no token" in str(ei.value)


def test_local_tcp_mode_reads_daemon_json(monkeypatch):
    """Windows' way (PYTHOND_LOCAL_TCP=1 elsewhere): port and token from daemon.json beside the socket."""
    d = Daemon(env={"PYTHOND_LOCAL_TCP": "1", "PYTHOND_PORT": "0"})
    try:
        for k, v in (("PYTHOND_SOCK", d.sock), ("HOME", d.home), ("PYTHOND_LOCAL_TCP", "1")):
            monkeypatch.setenv(k, v)
        monkeypatch.delenv("PYTHOND_HOST", raising=False)
        with Client() as c:
            assert c.endpoint.label().startswith("127.0.0.1:")
            assert c.new("ltcp").run("print(5)").output == "5\n"
    finally:
        d.close()
