"""Pages read each worker's in-memory index, which tests/directory loads from both databases."""

from __future__ import annotations

import pytest


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    return sqlite_url
