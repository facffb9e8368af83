"""pythond worker: one Python process per session (embedded in the pythond binary)."""
