"""Benchmarks: `python -m bench.<name>` prints measured numbers and ratios."""

# Measure under the process set-up of a real worker (one BLAS thread, see livehuman_site/__init__.py), which
# must happen before any benchmark imports numpy.
import livehuman_site  # noqa: F401
