from __future__ import annotations

import pytest

# The benchmark fixture comes from pytest-benchmark, in the bench extra.
pytest.importorskip("pytest_benchmark")
