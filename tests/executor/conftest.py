"""Fixtures of the executor tests: simulated Xen hosts over real sshd, and an executor serving them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from executor_hosts import Cluster, Executor, clean_dir, inventory_for, serve, start_hosts, stop_hosts

from simxen import testing, xlparse


def _require_simxen() -> None:
    if not testing.sshd_available():
        pytest.skip(f"sshd unavailable: {testing.REQUIREMENTS_HINT}")
    if not xlparse.available():
        pytest.skip(f"real xl parser unavailable: {testing.REQUIREMENTS_HINT}")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """xen1 and xen2, shared by the session's tests: each test uses its own domain names."""
    _require_simxen()
    base = tmp_path_factory.mktemp("executor")
    hosts = start_hosts(base / "hosts", ["xen1", "xen2"])
    try:
        datastore = clean_dir(base / "datastores")
        remotes = clean_dir(base / "remotes")
        yield Cluster(hosts, datastore, remotes, inventory_for(hosts, datastore, remote_dir=remotes))
    finally:
        stop_hosts(hosts)


@pytest.fixture
async def executor(cluster: Cluster) -> AsyncIterator[Executor]:
    async for running in serve(cluster.inventory):
        yield running


@pytest.fixture(autouse=True)
def _no_leftover_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "cluster" in request.fixturenames:
        for host in request.getfixturevalue("cluster").hosts:
            host.clear_faults()
