"""Fixtures of the executor tests: simulated Xen hosts over real sshd, and an executor serving them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from executor_hosts import clean_dir, inventory_for, start_hosts, stop_hosts

from onexen.runtime.config import ServiceConfig
from onexen.runtime.server import started_server
from onexen.v1 import executor_pb2_grpc
from services.executor.inventory import Inventory
from services.executor.runner import SshRunner
from services.executor.servicer import servicers, ssh_actions
from simxen import testing, xlparse
from simxen.host import SimHost


@dataclass
class Cluster:
    hosts: list[SimHost]
    datastore: Path
    remotes: Path
    inventory: Inventory

    def host(self, name: str) -> SimHost:
        return next(h for h in self.hosts if h.name == name)


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


@dataclass
class Executor:
    stub: executor_pb2_grpc.ExecutorServiceStub
    runner: SshRunner


async def serve(inventory: Inventory) -> AsyncIterator[Executor]:
    actions, runner = ssh_actions(inventory, threads=64)
    config = ServiceConfig(service="executor", port=0, grace_seconds=0.1)
    try:
        async with (
            started_server(config, servicers(inventory, actions)) as server,
            grpc.aio.insecure_channel(server.target) as channel,
        ):
            yield Executor(executor_pb2_grpc.ExecutorServiceStub(channel), runner)
    finally:
        runner.close()


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
