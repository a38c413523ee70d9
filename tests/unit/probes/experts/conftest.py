"""Fixtures of the expert tests: ``stub`` starts local HTTP stub servers and stops them afterwards."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from expert_stubs import Behaviour, StubServer


@pytest.fixture
def stub() -> Iterator[Callable[..., StubServer]]:
    servers: list[StubServer] = []

    def start(behaviour: Behaviour, **kw: Any) -> StubServer:
        s = StubServer(behaviour, **kw)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.close()
