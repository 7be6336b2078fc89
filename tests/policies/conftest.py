"""Fixtures for the policy tests: the shipped bundle, its engines, the oracle."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from policies._regorus import RegorusEngine
from policies.bundle import Bundle, load_bundle
from policies.decide import FAMILY_ENTRYPOINT
from policies.model import FamilyQueryInput
from policies.opa_standin import OpaStandin
from policies.settings import DEFAULT_BUNDLE_DIR
from tests.policies.corpus import random_query
from tests.policies.oracle import Oracle

CORPUS_SIZE = 2000


@pytest.fixture(scope="session")
def bundle() -> Bundle:
    return load_bundle([DEFAULT_BUNDLE_DIR])


@pytest.fixture(scope="session")
def oracle(bundle: Bundle) -> Oracle:
    return Oracle(bundle.data["catalogue"])


@pytest.fixture(scope="session")
def embedded(bundle: Bundle) -> RegorusEngine:
    # As the broker runs it: the family decision compiled to regorus's virtual machine.
    return RegorusEngine(bundle, compiled=[FAMILY_ENTRYPOINT])


@pytest.fixture(scope="session")
def interpreter(bundle: Bundle) -> RegorusEngine:
    # JUNCTION_POLICY_COMPILED=false: the same engine walking the policy's syntax tree.
    return RegorusEngine(bundle)


@pytest.fixture(scope="session")
def corpus() -> list[FamilyQueryInput]:
    rng = random.Random(20261121)
    return [random_query(rng) for _ in range(CORPUS_SIZE)]


@pytest.fixture(scope="session")
def standin() -> Iterator[OpaStandin]:
    with OpaStandin() as server:
        yield server
