"""Fixtures of the adapter tests: one stack with three simulated Xen hosts for the session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from adapter_stack import Rig, running_rig

from simxen import testing, xlparse


@pytest.fixture(scope="session")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    if not testing.sshd_available():
        pytest.skip(f"sshd unavailable: {testing.REQUIREMENTS_HINT}")
    if not xlparse.available():
        pytest.skip(f"real xl parser unavailable: {testing.REQUIREMENTS_HINT}")
    with running_rig(tmp_path_factory.mktemp("adapter-stack")) as started:
        yield started
