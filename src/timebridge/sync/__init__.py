"""The bridge: the pure sync planner and, around it, the I/O that runs it."""
