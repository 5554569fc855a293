"""Benchmarks (issue 8): ratios of lib functions against references and baselines, measured side by side.

``python -m benchmarks`` runs them all and writes BENCHMARKS.md and figures/benchmarks/*.png;
``python -m benchmarks.<name>`` runs one and prints it.
"""
