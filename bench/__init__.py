"""Benchmarks, run on demand (never in the test suite); results are written down in
bench/RESULTS.md."""
