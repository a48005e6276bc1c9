"""Fixtures for the simulated Xen host (reusable elsewhere through simxen.testing)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from simxen_fixtures import FAST, reference_domu_cfg

from simxen import testing, xlparse
from simxen.host import SimHost


@pytest.fixture(scope="session")
def xl_parser() -> Path:
    """The real xl parser with the project's shim built once per session (skips when missing)."""
    if not xlparse.available():
        pytest.skip(f"real xl parser unavailable: {testing.REQUIREMENTS_HINT}")
    return xlparse.build_shim()


@pytest.fixture
def domu_cfg(tmp_path: Path) -> Path:
    path = tmp_path / "domu.cfg"
    path.write_text(reference_domu_cfg())
    return path


@pytest.fixture
def local_host(tmp_path: Path, xl_parser: Path) -> SimHost:
    """A simulated host without sshd, named like the reference host; run its xl with run_xl()."""
    return SimHost.prepare(tmp_path / "hosts", "xenhost", **FAST)


@pytest.fixture
def sim_host(tmp_path: Path, xl_parser: Path) -> Iterator[SimHost]:
    if not testing.sshd_available():
        pytest.skip(f"sshd unavailable: {testing.REQUIREMENTS_HINT}")
    with testing.sim_host(tmp_path / "hosts", "xen1", **FAST) as host:
        yield host


@pytest.fixture
def two_sim_hosts(tmp_path: Path, xl_parser: Path) -> Iterator[tuple[SimHost, SimHost]]:
    if not testing.sshd_available():
        pytest.skip(f"sshd unavailable: {testing.REQUIREMENTS_HINT}")
    with testing.two_sim_hosts(tmp_path / "hosts", **FAST) as hosts:
        yield hosts
