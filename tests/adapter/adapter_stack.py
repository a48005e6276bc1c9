"""A whole onexen stack for the adapter tests, and a front-end around it.

`Rig` is what an OpenNebula front-end would have: the three services and three simulated
Xen hosts (stack.launcher.Stack, real sshd), OpenNebula's remotes with stand-in tm and
vnm scripts (adapter.scripted_vm), a `vms/` directory for deployment files, and the
environment that points the adapters at the services.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapter.scripted import OnedVm, ScriptedMonitord, ScriptedOned, install_fake_remotes
from simxen.facts import load_facts, save_facts
from simxen.host import SimHost
from stack.cli import free_ports
from stack.launcher import Stack

HOSTS = ("xen1", "xen2", "xen3")
# Quick guests, as the executor's tests use (the real host took 1-3 s for each step).
FAST: dict[str, Any] = {
    "boot_seconds": 0.2,
    "shutdown_seconds": 0.3,
    "reboot_seconds": 0.3,
    "cleanup_seconds": 0.3,
}
# Short monitord periods: a state change reaches monitord within a second or two.
PERIODS = {
    "STATE_VM": 1,
    "MONITOR_VM": 2,
    "MONITOR_HOST": 2,
    "BEACON_HOST": 2,
    "SYSTEM_HOST": 30,
    "SYNC_STATE_VM": 4,
}


@dataclass
class Rig:
    stack: Stack
    frontend: Path
    tm_log: Path
    vnm_log: Path

    @property
    def remotes(self) -> Path:
        return self.frontend / "remotes"

    @property
    def env(self) -> dict[str, str]:
        services = self.stack.services
        return {
            "ONEXEN_EXECUTOR": services["executor"].address,
            "ONEXEN_TRANSLATOR": services["translator"].address,
            "ONEXEN_MONITOR": services["monitor"].address,
        }

    def host(self, name: str) -> SimHost:
        return next(h for h in self.stack.hosts if h.name == name)

    def vm(self, vm_id: int, host: str = "xen1", **kw: Any) -> OnedVm:
        return OnedVm(vm_id, host, datastores=self.stack.datastores, vms_dir=self.frontend / "vms", **kw)

    def oned(self, arguments: str = "-t 15 -r 0 xen", *, log: str = "vmm", **kw: Any) -> ScriptedOned:
        options = f"--remotes {self.remotes} --log-file {self.frontend / f'{log}.log'} --log-level debug"
        return ScriptedOned.start(f"{arguments} {options}", env={**self.env, **kw.pop("env", {})}, **kw)

    def monitord(
        self, arguments: str = "-r 3 -t 15 -w 90 xen", *, log: str = "im", **kw: Any
    ) -> ScriptedMonitord:
        options = f"--datastore-location {self.stack.datastores} --log-file {self.frontend / f'{log}.log'}"
        return ScriptedMonitord.start(f"{arguments} {options}", env={**self.env, **kw.pop("env", {})}, **kw)

    def tm_calls(self) -> list[str]:
        return self.tm_log.read_text().splitlines()

    def vnm_calls(self) -> list[str]:
        return self.vnm_log.read_text().splitlines()


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def running_rig(workdir: Path) -> Iterator[Rig]:
    ports = free_ports()
    # The launcher starts the monitor without --executor/--translator; with ports other
    # than the defaults it learns them from the environment it inherits.
    peers = {
        "ONEXEN_EXECUTOR": f"127.0.0.1:{ports['executor']}",
        "ONEXEN_TRANSLATOR": f"127.0.0.1:{ports['translator']}",
    }
    with _environment(peers):
        stack = Stack(workdir, host_names=HOSTS, ports=ports)
        stack.start()
    try:
        for host in stack.hosts:
            save_facts(host.state_dir, load_facts(host.state_dir).updated(**FAST))
        frontend = workdir / "frontend"
        tm_log, vnm_log = install_fake_remotes(frontend / "remotes", workdir / "remotes", stack.datastores)
        yield Rig(stack, frontend, tm_log, vnm_log)
    finally:
        # Hosts first: a command a test left hanging on a host (DRIVER_CANCEL of a hung xl)
        # ends with its sshd, so the executor stops at once instead of after its grace period.
        for host in stack.hosts:
            host.stop()
        stack.stop()
