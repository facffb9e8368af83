"""A node's link cut silently mid-command (a relay that stops forwarding, no FIN or RST): sh raises
NodeLost naming the job, the command runs on there, and once the link is back c.job(..., wait=True)
gets all of its output and its result, as `pysh job n --wait` does."""
import socket
import threading

from conftest import Node
from pythond import NodeLost


class Relay(object):
    """TCP on loopback, node -> relay -> hub; stall() drops bytes both ways and passes no close."""

    def __init__(self, target_port):
        self.target = target_port
        self.stalled = False
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(16)
        self.port = self.srv.getsockname()[1]
        self.socks = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                a, _ = self.srv.accept()
            except OSError:
                return
            b = socket.create_connection(("127.0.0.1", self.target))
            self.socks += [a, b]
            threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()
            threading.Thread(target=self._pipe, args=(b, a), daemon=True).start()

    def _pipe(self, src, dst):
        try:
            while True:
                d = src.recv(65536)
                if not d:
                    break
                if not self.stalled:
                    dst.sendall(d)
        except OSError:
            pass
        if not self.stalled:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def stall(self):
        self.stalled = True

    def heal(self):
        self.stalled = False

    def close(self):
        self.srv.close()
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass


def test_link_cut_mid_command_then_job_wait_gets_the_rest(hub_client, fleet):
    relay = Relay(fleet.hub.port)
    try:
        n5 = Node(fleet.hub, "n5", ["tier=relayed"], port=relay.port)
        fleet.nodes.append(n5)
        hub_client.wait_for_node("n5", timeout=10)
        s = hub_client.sh_stream("n5", "echo before; sleep 1; echo after; exit 7")
        got = []
        try:
            for fd, data in s:
                got.append(data)
                if b"before" in b"".join(got):
                    relay.stall()
            raise AssertionError("the command ended although its link was cut")
        except NodeLost as e:
            assert e.job_id == s.id and e.node == "n5" and e.code == "node_offline"
            assert "still running there (job %s)" % s.id in str(e)
        relay.heal()  #: the node redials through it once it hears nothing from the hub
        hub_client.wait_for_node("n5", timeout=30)
        r = hub_client.job("n5", s.id, wait=True)
        assert r.stdout == b"before\nafter\n" and r.exit_code == 7 and r.id == s.id
    finally:
        relay.close()
