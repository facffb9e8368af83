"""fork cells (POSIX): filled in by the async-cells work."""
