"""What the test suite and the benchmarks share: databases, child processes, scenarios.

Not part of the server package; both `tests/` and `bench/` import from here.
"""
