"""Fixtures of the fault tests: a real registry behind a relay that can be told to misbehave."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.faulty_relay import FaultyRelay
from tests.support.registry import RegistryServer


@pytest.fixture
def relay(registry: RegistryServer) -> Iterator[FaultyRelay]:
    """The registry as the daemons see it: through a relay with no faults and no rate limit until told."""
    with FaultyRelay(registry.url) as server:
        yield server


def pytest_configure(config: pytest.Config) -> None:
    # When a hypothesis test fails, its report pulls in mypy_extensions.TypedDict, which warns; with the
    # project's `filterwarnings = error` that warning would replace the falsifying example with an INTERNALERROR.
    config.addinivalue_line("filterwarnings", "ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning")
