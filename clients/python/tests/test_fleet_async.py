"""AsyncClient's fleet calls against the real hub and nodes (the same operations as Client's)."""
import asyncio
import hashlib
import os

import pytest

from pythond import AsyncClient, NodeOffline, NoSuchNode, Timeout


def run(coro):
    return asyncio.run(coro)


def test_async_nodes_wait_sh(fleet):
    async def main():
        async with AsyncClient(socket=fleet.hub.sock) as c:
            ids = {n.id for n in await c.nodes()}
            info = await c.wait_for_node("n1", timeout=5)
            r = await c.sh("n1", "printf 'a\\377'; echo e >&2; exit 4", env={"X": "1"})
            with pytest.raises(Timeout):
                await c.wait_for_node("never", timeout=0.2)
            with pytest.raises(NoSuchNode) as ei:
                await c.sh("nope", "true")
            data = os.urandom(1 << 20)
            piped = await c.sh("n2", "sha256sum", stdin=data)
            big = await c.sh("n1", "head -c %d /dev/zero" % (20 << 20))
            t = await c.sh("n1", "sleep 10", timeout=0.3)
            # sessions on a node from the same client, between tunnels
            s = await c.new("n2/awork", replace=True)
            out = (await s.run("print(2 + 3)")).output
            await s.kill()
            return ids, info, r, str(ei.value), piped, hashlib.sha256(data).hexdigest(), big, t, out

    ids, info, r, nosuch, piped, want, big, t, out = run(main())
    assert {"n1", "n2"} <= ids and info.online
    assert r.stdout == b"a\xff" and r.stderr == b"e\n" and r.exit_code == 4 and r.id
    assert nosuch.startswith("no node 'nope' -- nodes: ")
    assert piped.stdout.split()[0].decode() == want
    assert big.stdout == b"\0" * (20 << 20)
    assert t.timed_out and t.exit_code == 124
    assert out == "5\n"


def test_async_stream_many_jobs_files(fleet, tmp_path):
    async def main():
        c = await AsyncClient.connect(socket=fleet.hub.sock)
        try:
            s = c.sh_stream("n1", "echo a; echo b >&2")
            pieces = [p async for p in s]
            by_sel = sorted([r.node async for r in c.sh_many("role=web", "true")])
            by_ids = {r.node: r.stdout async for r in c.sh_many(["n1", "n2"], "echo $HOME")}
            jid = await c.sh_detached("n2", "echo later")
            waited = await c.job("n2", jid, wait=True)
            listed = [j.id for j in await c.jobs("n2")]
            src = tmp_path / "f.bin"
            src.write_bytes(os.urandom(5 << 20))
            put = await c.put("n2", str(src), "async.bin")
            await c.get("n2", "async.bin", str(tmp_path / "g.bin"))
            text = await c.read_file("n2", "async.bin")
            return pieces, s, by_sel, by_ids, jid, waited, listed, put, src.read_bytes(), (tmp_path / "g.bin").read_bytes(), text
        finally:
            await c.close()

    pieces, s, by_sel, by_ids, jid, waited, listed, put, want, got, text = run(main())
    assert (1, b"a\n") in pieces and (2, b"b\n") in pieces and s.result.exit_code == 0
    assert by_sel == ["n1", "n2"]
    assert by_ids["n1"] == ("%s\n" % fleet.n1.home).encode() and by_ids["n2"] == ("%s\n" % fleet.n2.home).encode()
    assert waited.stdout == b"later\n" and waited.exit_code == 0 and jid in listed
    assert put["bytes"] == 5 << 20 and got == want and text == want


def test_async_offline_node(fleet):
    async def main():
        async with AsyncClient(socket=fleet.hub.sock) as c:
            n = fleet.add("n4", ["tier=async-gone"])
            await c.wait_for_node("n4", timeout=10)
            n.kill()
            for _ in range(100):
                if not (await c.node("n4")).online:
                    break
                await asyncio.sleep(0.05)
            with pytest.raises(NodeOffline):
                await c.sh("n4", "true")
            return [r async for r in c.sh_many("tier=async-gone", "true")]

    rs = run(main())
    assert [(r.node, r.status) for r in rs] == [("n4", "offline")]
