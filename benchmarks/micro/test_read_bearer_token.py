from __future__ import annotations

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from bearer_mw import read_bearer_token

# A token of the length that bearer_mw issues (56 characters).
TOKEN = "Q2hlY2tzdW0tZnJlZS1iZW5jaG1hcmstdG9rZW4tZm9yLXBhcnNpbmc1"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(f"Bearer {TOKEN}", TOKEN, id="valid"),
        pytest.param(f"bearer {TOKEN}", TOKEN, id="lowercase-scheme"),
        pytest.param(f"Bearer {TOKEN}".encode(), TOKEN, id="bytes"),
        pytest.param(None, None, id="absent"),
        pytest.param("Basic dXNlcjpwYXNzd29yZA==", None, id="other-scheme"),
        pytest.param(f"Bearer !{TOKEN[1:]}", None, id="malformed"),
        pytest.param(f"Bearer {TOKEN} extra", None, id="text-after-token"),
        pytest.param("Bearer " + "a" * 2000, None, id="oversized"),
    ],
)
def test_read_bearer_token(
    benchmark: BenchmarkFixture, value: str | bytes | None, expected: str | None
) -> None:
    token = benchmark(read_bearer_token, value)

    assert token == expected
