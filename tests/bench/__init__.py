"""Benchmarks: run by hand or from `make bench-*`, never timed-asserted in the test suite."""
