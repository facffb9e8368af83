"""Checks of _pythond.cells.Cells (the cells kept for poll), run by bootstrap.test.ts with
cwd = src/worker/py: finished cells go in the order they ended, running ones never; the count,
bytes and age limits."""
import sys
import time

sys.path.insert(0, ".")
from pychecks import check, done  # noqa: E402 (beside this file)
from _pythond import cells  # noqa: E402

cells.MAX_CELLS = 8  # over 8, down to 8 - 8/16 = 8 at once


class Result(object):
    ok = True
    error = ""
    exit_code = None


def new(reg, kind="run"):
    c = cells.Cell(kind, "pass")
    reg.add(c)
    return c


def finish(c, output=b""):
    if output:
        c._sink(output)  # what the output path delivers to the record
    c.finish(Result())


def kept(reg):
    return [c.id for c in reg.by_id.values()]


# A long cell started first and ending after many quick ones is the newest result: it stays,
# and the quick ones that ended before it go first.
reg = cells.Cells()
long = new(reg, "fire")
quick = []
for _ in range(10):
    c = new(reg)
    finish(c)
    quick.append(c)
check(long.id in kept(reg), "a running cell is never evicted")
check(len(reg.by_id) == 8, "the count is held at MAX_CELLS (%d)" % len(reg.by_id))
check(reg.get(quick[0].id) is None and reg.get(quick[-1].id) is not None, "the quick cells that ended first went first")
finish(long)
after = [new(reg) for _ in range(3)]
for c in after:
    finish(c)
check(reg.get(long.id) is long, "a cell that ended late outlives older quick cells that ended before it")
check(reg.get(quick[5].id) is None and reg.get(quick[6].id) is quick[6], "quick cells that ended before it went instead (%r)" % kept(reg))
check(reg.latest() is after[-1], "latest() is the cell started last")
reg.tidy()  # settles the last one (a run does this after its reply)
check(list(reg.finished) == [c.id for c in sorted(reg.by_id.values(), key=lambda c: c.ended)], "finished holds every kept cell, in the order they ended")

# Only running cells: nothing to evict, however many.
reg = cells.Cells()
running = [new(reg, "fire") for _ in range(12)]
check(len(reg.by_id) == 12, "running cells over the cap all stay")
check([c.id for c in reg.running()] == [c.id for c in running], "running() keeps the start order")

# Bytes: over MAX_KEPT_BYTES, the cells that ended first go, whatever the count.
saved = cells.MAX_KEPT_BYTES
cells.MAX_KEPT_BYTES = 1000
reg = cells.Cells()
big = [new(reg) for _ in range(3)]
for c in big:
    finish(c, b"x" * 400)
new(reg)  # the next cell settles and evicts
check(reg.get(big[0].id) is None and reg.get(big[1].id) is big[1], "over the byte limit the first ended goes (%r)" % kept(reg))
check(reg.kept_bytes == 800, "kept bytes follow evictions (%d)" % reg.kept_bytes)
cells.MAX_KEPT_BYTES = saved

# Age: a cell that ended more than MAX_AGE ago goes even under every limit, and even behind a
# cell that started before it and still runs.
reg = cells.Cells()
still_running = new(reg, "fire")
old = new(reg)
finish(old)
fresh = new(reg)
finish(fresh)
old.ended = time.time() - cells.MAX_AGE - 1
new(reg)
check(reg.get(old.id) is None and reg.get(fresh.id) is fresh, "an hour-old result goes, a fresh one stays")
check(reg.get(still_running.id) is still_running, "the running cell before it stays")

done()
