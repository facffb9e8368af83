"""The check counter shared by the Python check scripts here (run by bootstrap.test.ts)."""
import sys

checks = 0


def check(cond, what):
    global checks
    checks += 1
    if not cond:
        sys.stderr.write("FAILED: %s\n" % what)
        sys.exit(1)


def done():
    print("ok %d checks" % checks)
