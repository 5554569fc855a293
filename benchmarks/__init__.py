"""Benchmarks: timings of lib functions against reference implementations (run as python -m benchmarks.<name>)."""
