"""Simulated Xen hosts for the executor's tests and benchmark (a uniquely named helper module).

`QuietSimHost` is simxen's host with one change: sshd gives sessions an empty HOME. On this
development machine root's ~/.bashrc runs `pyenv init`, and bash sources it for every command
sshd starts (Debian's bash does so for non-interactive shells under sshd): 150-300 ms per
command, more than the simulated xl itself, and nothing a Xen host's oneadmin would have.
Both ways of reaching the hosts (the executor, and one ssh process per action) see the same
hosts, so comparisons stay fair.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from services.executor.inventory import Inventory, parse_inventory, render_inventory
from simxen.host import SimHost

# Quick guests (the real host took 1-3 s for each step).
FAST: dict[str, Any] = {
    "boot_seconds": 0.2,
    "shutdown_seconds": 0.3,
    "reboot_seconds": 0.3,
    "cleanup_seconds": 0.3,
}


class QuietSimHost(SimHost):
    def _write_sshd_config(self) -> None:
        super()._write_sshd_config()
        home = self.host_dir / "home"
        home.mkdir(exist_ok=True)
        text = self.sshd_config_path.read_text()
        self.sshd_config_path.write_text(text.replace("SetEnv ", f"SetEnv HOME={home} ", 1))


def start_hosts(workdir: Path, names: Iterable[str], **facts: Any) -> list[QuietSimHost]:
    """Several hosts in one workdir (they trust each other), started side by side."""
    names = list(names)
    # The shared client key is made by the first host; make it before the others race for it.
    first: QuietSimHost = QuietSimHost.start(workdir, names[0], **{**FAST, **facts})
    with ThreadPoolExecutor(max_workers=8) as pool:
        rest = list(pool.map(lambda n: QuietSimHost.start(workdir, n, **{**FAST, **facts}), names[1:]))
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
