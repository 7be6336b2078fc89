"""One demo region (six real connectors, a real broker) for the hostile-input tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.hostile.hostile_kit import HostileRegion, open_region


@pytest.fixture(scope="session")
def hostile_region(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostileRegion]:
    region = open_region(tmp_path_factory.mktemp("hostile"))
    try:
        yield region
    finally:
        region.close()
