"""Simulated Xen hosts for the executor's tests and benchmark (a uniquely named helper module).

simxen's hosts give their SSH sessions an empty HOME (so no developer's ~/.bashrc runs before each
command), so both ways of reaching the hosts (the executor, and one ssh process per action) see
the same clean hosts and comparisons stay fair.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from onexen.runtime.config import ServiceConfig
from onexen.runtime.server import started_server
from onexen.v1 import executor_pb2_grpc
from services.executor.inventory import Inventory, parse_inventory, render_inventory
from services.executor.runner import SshRunner
from services.executor.servicer import servicers, ssh_actions
from simxen.host import SimHost

# Quick guests (the real host took 1-3 s for each step).
FAST: dict[str, Any] = {
    "boot_seconds": 0.2,
    "shutdown_seconds": 0.3,
    "reboot_seconds": 0.3,
    "cleanup_seconds": 0.3,
}


def start_hosts(workdir: Path, names: Iterable[str], **facts: Any) -> list[SimHost]:
    """Several hosts in one workdir (they trust each other), started side by side."""
    names = list(names)
    # The shared client key is made by the first host; make it before the others race for it.
    first = SimHost.start(workdir, names[0], **{**FAST, **facts})
    with ThreadPoolExecutor(max_workers=8) as pool:
        rest = list(pool.map(lambda n: SimHost.start(workdir, n, **{**FAST, **facts}), names[1:]))
    return [first, *rest]


def stop_hosts(hosts: Iterable[SimHost]) -> None:
    for host in hosts:
        host.stop()


def inventory_for(
    hosts: Iterable[SimHost],
    datastore: Path,
    *,
    remote_dir: Path | None = None,
    defaults: dict[str, Any] | None = None,
    extra_hosts: dict[str, dict[str, Any]] | None = None,
) -> Inventory:
    """An inventory reaching these hosts exactly as a production one would reach real ones."""
    hosts = list(hosts)
    first = hosts[0]
    table: dict[str, Any] = {
        "user": first.user,
        "key": str(first.key_path),
        "known_hosts": str(first.cluster_known_hosts_path),
        "datastore_roots": [str(datastore)],
        # xl under the simulated sudo keeps PATH, so its ssh is the host's (-F ssh_config).
        "migration_via_su": False,
        "migration_key": str(first.key_path),
        "migration_known_hosts": str(first.cluster_known_hosts_path),
    }
    if remote_dir is not None:
        table["remote_dir"] = str(remote_dir)
    table.update(defaults or {})
    entries = {h.name: {"address": h.address, "port": h.port} for h in hosts}
    entries.update(extra_hosts or {})
    return parse_inventory(render_inventory(table, entries))


def pv_config(name: str, mac: str = "00:16:3e:00:00:01", memory: int = 128) -> str:
    """A small PV guest as OpenNebula's driver would deploy it."""
    return (
        f'name = "{name}"\n'
        'type = "pv"\n'
        'kernel = "/boot/vmlinuz"\n'
        f"memory = {memory}\n"
        "vcpus = 1\n"
        f'vif = [ "mac={mac},bridge=xenbr0" ]\n'
        'on_poweroff = "destroy"\n'
    )


def clean_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


@dataclass
class Cluster:
    hosts: list[SimHost]
    datastore: Path
    remotes: Path
    inventory: Inventory

    def host(self, name: str) -> SimHost:
        return next(h for h in self.hosts if h.name == name)


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
