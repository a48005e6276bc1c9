"""The onexen stack against the real Xen lab: the three services as processes, an inventory
for the lab's hosts, and what OpenNebula's front-end would have done around the driver
(the TM prolog that puts a disk in the system datastore, the vnm scripts on the hosts).

The services are spawned as stack/launcher.py spawns them (its health wait and terminate
are reused); only the inventory differs: it points at the lab's dom0s.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xenlabkit.client import Dom0
from xenlabkit.state import LabInfo

from adapter.scripted import OnedVm, ScriptedMonitord, ScriptedOned, install_fake_remotes
from services.executor.inventory import render_inventory
from stack.cli import free_ports
from stack.launcher import FULL_NAMES, ServiceProcess, _terminate, wait_serving

DATASTORES = Path("/var/lib/one/datastores")
GUEST = "/var/lib/xenlab/guest"
# The kernel command line every lab guest gets; console=hvc0 puts its heartbeat in the console log.
# loglevel=4: the kernel's boot messages go through the emulated console, slow under TCG (the lab's
# own guest, booted with it, is up in about 20 s).
CMDLINE = "console=hvc0 loglevel=4"
# A short shutdown timeout: the stubborn guest needs it to run out, the good one is down in seconds.
SHUTDOWN_TIMEOUT = 60
# Monitoring periods short enough for a test, long enough for xentop under TCG.
PERIODS = {
    "STATE_VM": 3,
    "MONITOR_VM": 6,
    "MONITOR_HOST": 10,
    "BEACON_HOST": 10,
    "SYSTEM_HOST": 10,
    "SYNC_STATE_VM": 10,
}
# The vnm steps a NIC with VN_MAD=dummy runs on the host; upstream's dummy driver does nothing either.
VNM_SCRIPT = '#!/bin/sh\ncat >/dev/null\necho "$(date +%s) $(basename "$0") $*" >> /var/tmp/one/vnm.log\n'


@dataclass
class Timings:
    """Seconds per step, printed with the test output and appended to a JSON-lines file."""

    path: Path
    steps: list[tuple[str, float]] = field(default_factory=list)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            took = time.monotonic() - started
            self.steps.append((name, took))
            print(f"[xen timing] {name}: {took:.1f} s", flush=True)
            with self.path.open("a") as out:
                out.write(json.dumps({"step": name, "seconds": round(took, 1)}) + "\n")


@dataclass
class LabStack:
    lab: LabInfo
    workdir: Path
    services: dict[str, ServiceProcess]
    frontend: Path

    @property
    def env(self) -> dict[str, str]:
        return {
            "ONEXEN_EXECUTOR": self.services["executor"].address,
            "ONEXEN_TRANSLATOR": self.services["translator"].address,
            "ONEXEN_MONITOR": self.services["monitor"].address,
        }

    def oned(self, timeout: float = 30.0, shutdown_timeout: int = 0) -> ScriptedOned:
        log = self.frontend / "vmm.log"
        options = f"--remotes {self.frontend / 'remotes'} --log-file {log} --log-level debug"
        if shutdown_timeout:
            options += f" --shutdown-timeout {shutdown_timeout}"
        return ScriptedOned.start(f"-t 15 -r 0 xen {options}", env=self.env, init_timeout=timeout)

    def monitord(self, timeout: float = 30.0) -> ScriptedMonitord:
        options = f"--datastore-location {DATASTORES} --log-file {self.frontend / 'im.log'}"
        return ScriptedMonitord.start(f"-r 3 -t 15 -w 300 xen {options}", env=self.env, init_timeout=timeout)

    def logs(self, lines: int = 60) -> str:
        """The tail of every service and adapter log, for a failure report."""
        paths = [s.log_path for s in self.services.values()]
        paths += [self.frontend / "vmm.log", self.frontend / "im.log"]
        return "\n".join(f"--- {p}\n{tail(p, lines)}" for p in paths if p.exists())


def tail(path: Path | str, lines: int = 40) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(cannot read {path}: {exc.strerror})"


def inventory_text(lab: LabInfo) -> str:
    """The lab's hosts as the executor sees them, plus `NAMEf`: the same dom0 with FORCE_DESTROY."""
    first = next(iter(lab.hosts.values()))
    defaults = {
        "user": first.user,
        "key": first.key,
        "known_hosts": first.known_hosts,
        "SHUTDOWN_TIMEOUT": SHUTDOWN_TIMEOUT,
        "FORCE_DESTROY": False,
        "datastore_roots": [str(DATASTORES)],
        "remote_dir": "/var/tmp/one",
        # xl's migration ssh runs as oneadmin (`su - oneadmin`), whose key and the dom0's
        # /etc/ssh/ssh_known_hosts the lab provides: upstream's default, unchanged.
    }
    hosts: dict[str, dict[str, Any]] = {}
    for name, host in lab.hosts.items():
        # From here a host is 127.0.0.1:<forward>; from the other dom0 it is NAME:22.
        table = {"address": host.address, "port": host.port, "migration_address": name, "migration_port": 22}
        hosts[name] = table
        hosts[f"{name}f"] = {**table, "FORCE_DESTROY": True}
    return render_inventory(defaults, hosts)


def _spawn(workdir: Path, name: str, port: int, extra: list[str]) -> ServiceProcess:
    log_path = workdir / "logs" / f"{name}.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", f"services.{name}.main", "--port", str(port), *extra],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )
    return ServiceProcess(name=name, address=f"127.0.0.1:{port}", log_path=log_path, process=process)


@contextmanager
def lab_stack(lab: LabInfo, workdir: Path) -> Iterator[LabStack]:
    (workdir / "logs").mkdir(parents=True, exist_ok=True)
    inventory = workdir / "inventory.toml"
    inventory.write_text(inventory_text(lab))
    ports = free_ports()
    peers = [
        "--executor",
        f"127.0.0.1:{ports['executor']}",
        "--translator",
        f"127.0.0.1:{ports['translator']}",
    ]
    services: dict[str, ServiceProcess] = {}
    try:
        for name in FULL_NAMES:
            extra = {"executor": ["--inventory", str(inventory)], "monitor": peers}.get(name, [])
            services[name] = _spawn(workdir, name, ports[name], extra)
        for service in services.values():
            wait_serving(service, timeout=60)
        frontend = workdir / "frontend"
        # The fake tm scripts only record their calls: their datastore is a local directory,
        # never the hosts' (the disks a host needs are put there over ssh, see `prolog`).
        install_fake_remotes(frontend / "remotes", workdir / "host-remotes", workdir / "datastores")
        yield LabStack(lab, workdir, services, frontend)
    finally:
        for service in reversed(list(services.values())):
            _terminate(service.process)


# The lab's dom0 has no udev, so its devtmpfs lacks /dev/fd and /dev/std*: Xen's locking.sh
# (`stat -L /dev/stdin` in claim_lock) then spins until libxl kills /etc/xen/scripts/block after
# its hotplug timeout, and every file-backed disk fails ("unable to add disk devices"). The
# links belong in the lab's rc.sh; until then the tier adds them (idempotent, root).
DEV_LINKS = (
    "ln -sfn /proc/self/fd /dev/fd && ln -sfn /proc/self/fd/0 /dev/stdin"
    " && ln -sfn /proc/self/fd/1 /dev/stdout && ln -sfn /proc/self/fd/2 /dev/stderr"
)


def prepare_dom0(root: Dom0) -> None:
    root.check(DEV_LINKS)


def install_vnm(dom0: Dom0) -> None:
    """vnm/dummy/{pre,post,clean} in the host's remote dir, as `onehost sync` would copy them."""
    for step in ("pre", "post", "clean", "update_sg"):
        path = f"/var/tmp/one/vnm/dummy/{step}"
        script = shlex.quote(VNM_SCRIPT)
        dom0.check(f"mkdir -p /var/tmp/one/vnm/dummy && printf %s {script} > {path} && chmod 755 {path}")


class LabVm(OnedVm):
    """An OnedVm whose OS vector boots the lab's guest material, and whose disks live on the dom0."""

    def __init__(
        self,
        vm_id: int,
        host: str,
        vms_dir: Path,
        *,
        machine: str = "",
        kernel: str = f"{GUEST}/vmlinuz",
        initrd: str = f"{GUEST}/initrd.cpio.gz",
        cmdline: str = CMDLINE,
        memory_mb: int = 128,
        raw: str = "",
    ) -> None:
        super().__init__(
            vm_id, host, datastores=DATASTORES, vms_dir=vms_dir, memory_mb=memory_mb, context=False
        )
        self.kernel = kernel
        self.machine = machine
        self.initrd = initrd
        self.cmdline = cmdline
        self.raw = raw  # xl text for TEMPLATE/RAW (TYPE="xen"), pasted after the translated config

    def vm_xml(self) -> str:
        os_vector = {
            "KERNEL": self.kernel,
            "INITRD": self.initrd,
            "KERNEL_CMD": self.cmdline,
            "MACHINE": self.machine,
        }
        inner = "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in os_vector.items() if v)
        xml = re.sub(r"<OS>.*?</OS>", f"<OS>{inner}</OS>", super().vm_xml(), count=1)
        if self.raw:
            raw = f"<RAW><TYPE>xen</TYPE><DATA><![CDATA[{self.raw}]]></DATA></RAW>"
            xml = xml.replace("</TEMPLATE>", raw + "</TEMPLATE>", 1)
        return xml

    def prolog(self) -> None:
        """Nothing locally: `place_disks` did the TM's work on the host."""

    def place_disks(self, dom0: Dom0, image: str = f"{GUEST}/disk1.img") -> None:
        """The TM prolog's work: every disk of the template as `<DS>/0/<vmid>/disk.N` on the host."""
        dom0.check(f"mkdir -p {self.system_dir}")
        for disk in self.disks:
            dom0.check(f"cp --sparse=always {image} {self.system_dir}/disk.{disk['DISK_ID']}")


def xl_json(dom0: Dom0, domain: str) -> dict[str, Any] | None:
    """`xl list -l DOMAIN` on the host: the domain's libxl config, or None when it is not there."""
    done = dom0.run(f"sudo -n xl list -l {shlex.quote(domain)}")
    if done.rc != 0:
        return None
    data = json.loads(done.stdout)
    found: dict[str, Any] = data[0] if isinstance(data, list) else data
    return found


def wait_gone(dom0: Dom0, domain: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while dom0.run(f"sudo -n xl list {shlex.quote(domain)}").rc == 0:
        assert time.monotonic() < deadline, f"{domain} still listed after {timeout:g} s"
        time.sleep(2)


def wait_console(root: Dom0, domain: str, marker: str = "XENLAB-DOMU-UP", timeout: float = 180) -> None:
    """Until the guest's console log shows `marker` (the initramfs says it is up)."""
    console = f"/var/log/xen/console/guest-{domain}.log"
    deadline = time.monotonic() + timeout
    while marker not in root.run(f"cat {console} 2>/dev/null").stdout:
        assert time.monotonic() < deadline, (
            f"no {marker} from {domain}:\n" + root.run(f"tail -20 {console}").stdout
        )
        time.sleep(3)
