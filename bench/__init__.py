"""Benchmarks: `python -m bench.<name>` prints measured numbers and ratios."""
