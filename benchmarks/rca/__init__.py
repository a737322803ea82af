"""The root-cause evaluation harness behind benchmarks/rca_eval.py.

`scoring` is pure (tested in tests/benchmarks); `steth` runs the CLI; `recording` and `demo` are
the two sources of incidents; `table` prints the results.
"""
