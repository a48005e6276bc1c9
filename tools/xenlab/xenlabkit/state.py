"""The lab's description file (`.onexen/xenlab.json` by default): what tests and tools read.

{
  "schema": "onexen-xenlab/1",
  "ready": true,                      # false while the hosts are still booting
  "started_at": "2025-01-01T10:00:00",
  "run_dir": ".../.onexen/xenlab",    # overlays, config drives, serial logs, pid files
  "image": "/var/cache/onexen-xenlab/image-<recipe>",
  "recipe": "<recipe hash>",
  "key": ".../id_ed25519",            # the lab's client key (oneadmin and root accept it)
  "known_hosts": ".../known_hosts",   # "[127.0.0.1]:PORT ssh-ed25519 ..." for every host
  "dom0": {"user": "oneadmin", "datastores": "/var/lib/one/datastores", "remote_dir": "/var/tmp/one",
           "bridge": "xenbr0", "bridge_address": "10.77.0.1/24"},
  "guest": {"dir": "/var/lib/xenlab/guest", "kernel": ..., "initrd": ...,
            "configs": {"pv": ..., "pvh": ..., "hvm": ..., "stubborn": ...},
            "disks": [...], "ignore_shutdown_arg": "xenlab.ignore_shutdown=1"},
  "hosts": {
    "xen1": {"name": "xen1", "address": "127.0.0.1", "port": 40123, "user": "oneadmin",
             "key": ..., "known_hosts": ..., "host_key": "ssh-ed25519 AAAA...",
             "serial_log": ".../xen1/serial.log", "qemu_pid": 4242, "run_dir": ".../xen1",
             "link_address": "169.254.100.1",           # on the link between lab hosts; null alone
             "peer": {"name": "xen2", "address": "169.254.100.2"},  # null with one host
             "boot_seconds": 24.6}
  }
}
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .recipe import REPO

SCHEMA = "onexen-xenlab/1"
GUEST_DIR = "/var/lib/xenlab/guest"


def default_path() -> Path:
    return Path(os.environ.get("XENLAB_STATE") or REPO / ".onexen" / "xenlab.json")


@dataclass
class Peer:
    name: str
    address: str


@dataclass
class HostInfo:
    name: str
    address: str
    port: int
    user: str
    key: str
    known_hosts: str
    host_key: str
    serial_log: str
    qemu_pid: int
    run_dir: str
    link_address: str | None = None
    peer: Peer | None = None
    boot_seconds: float | None = None


def guest_description() -> dict[str, Any]:
    return {
        "dir": GUEST_DIR,
        "kernel": f"{GUEST_DIR}/vmlinuz",
        "initrd": f"{GUEST_DIR}/initrd.cpio.gz",
        "configs": {kind: f"{GUEST_DIR}/{kind}.cfg" for kind in ("pv", "pvh", "hvm", "stubborn")},
        "disks": [f"{GUEST_DIR}/disk1.img", f"{GUEST_DIR}/disk2.img"],
        "ignore_shutdown_arg": "xenlab.ignore_shutdown=1",
    }


DOM0 = {
    "user": "oneadmin",
    "datastores": "/var/lib/one/datastores",
    "remote_dir": "/var/tmp/one",
    "bridge": "xenbr0",
    "bridge_address": "10.77.0.1/24",
}


@dataclass
class LabInfo:
    run_dir: str
    image: str
    recipe: str
    key: str
    known_hosts: str
    started_at: str
    hosts: dict[str, HostInfo]
    ready: bool = False
    schema: str = SCHEMA
    dom0: dict[str, str] = field(default_factory=lambda: dict(DOM0))
    guest: dict[str, Any] = field(default_factory=guest_description)

    def to_json(self) -> str:
        data = asdict(self)
        head = {"schema": data.pop("schema"), "ready": data.pop("ready")}
        return json.dumps({**head, **data}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> LabInfo:
        data = json.loads(text)
        if data.get("schema") != SCHEMA:
            raise ValueError(f"not an {SCHEMA} description: schema {data.get('schema')!r}")
        hosts = {}
        for name, raw in data.pop("hosts").items():
            peer = raw.pop("peer", None)
            hosts[name] = HostInfo(**raw, peer=Peer(**peer) if peer else None)
        return cls(**data, hosts=hosts)


def save(info: LabInfo, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(info.to_json())
    tmp.replace(path)


def load(path: Path) -> LabInfo | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return LabInfo.from_json(text)
