"""AsyncClient: the same operations under asyncio, and two clients running cells at once."""
import asyncio

import pytest

from pythond import AsyncClient, NoSession, SessionDead, UnknownCell


def run(coro):
    return asyncio.run(coro)


def test_async_operations(daemon):
    async def main():
        async with AsyncClient(socket=daemon.sock) as c:
            s = await c.new("async1")
            r = await s.run("x = 41\nprint(x + 1)")
            assert r.ok and r.output == "42\n" and r.cell_id
            bad = await s.run("1/0")
            assert not bad.ok and "ZeroDivisionError" in bad.error
            pieces = []
            stream = s.stream("import time\nfor i in range(3):\n    print(i, flush=True); time.sleep(0.05)")
            async for p in stream:
                pieces.append(p)
            assert "".join(pieces) == "0\n1\n2\n" and len(pieces) > 1 and stream.result.ok
            async for p in s.stream("import time\nfor i in range(5):\n    print(i, flush=True); time.sleep(0.02)"):
                break  # abandoned early: the rest of that cell is read before the next call
            assert (await s.run("print('in step')")).output == "in step\n"
            got = []
            await s.run("print('cb')", on_output=got.append)
            assert got == ["cb\n"]
            cid = await s.fire("import time; time.sleep(0.1); y = 2")
            assert (await s.poll(cid)).cell_id == cid
            assert (await s.wait(cid)).ok
            assert (await s.wait(await s.fork("z = y + 1"))).ok
            assert {"x", "y", "z"} <= set(await s.vars())
            assert "x.bit_length()" in await s.complete("x.bit_")
            assert (await s.status())["state"] == "idle"
            assert "no running cells" in await s.interrupt()
            assert [i for i in await c.ls() if i.name == "async1"][0].state == "alive"
            with pytest.raises(NoSession):
                await c.session("nope").run("1")
            with pytest.raises(UnknownCell):
                await s.poll("000000000000")
            with pytest.raises(SessionDead):
                await s.run("import os; os._exit(1)")
            await (await c.new("async1", replace=True)).kill()

    run(main())


def test_two_clients_run_at_once(daemon):
    async def main():
        a = await AsyncClient.connect(socket=daemon.sock)
        b = await AsyncClient.connect(socket=daemon.sock)
        sa, sb = await a.new("par-a"), await b.new("par-b")
        # Each waits for the other's flag: only concurrent cells can both finish.
        await sa.run("import os, time\nflag = '%s/a'" % daemon.dir)
        await sb.run("import os, time\nflag = '%s/b'" % daemon.dir)
        code = ("open(flag, 'w').close()\nother = flag[:-1] + ('b' if flag.endswith('a') else 'a')\n"
                "t = time.time()\nwhile not os.path.exists(other) and time.time() - t < 20: time.sleep(0.01)\n"
                "print(os.path.exists(other))")
        ra, rb = await asyncio.gather(sa.run(code), sb.run(code))
        assert ra.output == rb.output == "True\n"
        await a.close()
        await b.close()

    run(main())
