"""The benchmark: ``python -m bench`` (see docs/benchmark.md)."""
