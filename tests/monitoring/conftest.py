"""Every monitoring test starts from an empty in-process recorder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from monitoring.recorder import recorder


@pytest.fixture(autouse=True)
def empty_recorder() -> Iterator[None]:
    # Requests made by earlier tests (of any app) are still buffered in this process.
    recorder.drain()
    yield
    recorder.drain()
