"""Load-testing harness for bearer_mw, run as ``python -m benchmarks``.

The harness starts its own Redis and app servers on loopback, drives load with wrk
(or a Python fallback), and writes tables and plots to ``benchmarks/results/``.
It uses only the public API of bearer_mw, so it runs unchanged against any version.
"""
