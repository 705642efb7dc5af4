"""Test-session settings shared by every test module."""

from threadpoolctl import threadpool_limits

# One BLAS thread, as the entry points (lighttune-xapp, e2sim) use: OpenBLAS threads on a
# loaded 2-core machine slow the small matrix products of the model down several times.
threadpool_limits(1)
