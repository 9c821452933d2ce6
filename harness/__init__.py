"""The test and benchmark harness: what `tests/` and `bench/` share (the repository's path, the
machine's PostgreSQL and throwaway databases on it, free ports, one `wait_until`, a recording
webhook sink, and the soak's figures and verdict).

Not shipped in the wheel: only the tests and the benchmarks import it, and it imports neither.
"""
