"""Micro-benchmarks of the I/O-free parts of bearer_mw, run with pytest-benchmark.

Run them with ``pytest benchmarks/micro``. The default test run collects only
``tests/``, so these never slow it down.
"""
