"""The simulator stays honest: the same xl/xentop sequence on a real Xen 4.17 dom0 and on a
simulated host (simxen, over its real sshd), compared by shape (output_shape.py): table
columns, `xl info` keys, `xl list -l` key paths, exit codes and error texts.

Every difference is reported at once, with both outputs, so a change of the real toolstack
(a new Xen) shows everything the simulator must learn in one run.
"""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import output_shape as shape
import paramiko
import pytest
from tier_helpers import CMDLINE, GUEST, tail
from xenlabkit.client import Dom0
from xenlabkit.state import LabInfo

from simxen.testing import parser_available, sim_host, ssh_client, ssh_run, sshd_available

pytestmark = pytest.mark.xen

DOMAIN = "cmpguest"
# Unique per run: on the simulated side this is the test machine's own /var/tmp.
WORK = f"/var/tmp/onexen-cmp-{os.getpid()}"
MAC_BOOT, MAC_HOTPLUG, MAC_NONE = "02:00:00:00:cc:01", "02:00:00:00:cc:02", "02:00:00:00:cc:99"

CONFIG = f"""name = "{DOMAIN}"
type = "pv"
kernel = "{GUEST}/vmlinuz"
ramdisk = "{GUEST}/initrd.cpio.gz"
cmdline = "{CMDLINE}"
memory = 128
vcpus = 1
disk = [ "format=raw, vdev=xvda, access=rw, target={WORK}/disk0.img" ]
vif = [ "mac={MAC_BOOT}, bridge=xenbr0" ]
"""


@dataclass(frozen=True)
class Ran:
    rc: int
    stdout: str
    stderr: str


class Side:
    """One host of the comparison: runs a command line, returns what came back."""

    def __init__(self, name: str, run: Callable[[str], Ran]) -> None:
        self.name = name
        self.run = run


@pytest.fixture
def simulated(tmp_path: Path) -> Iterator[Side]:
    if not (sshd_available() and parser_available()):
        pytest.fail("the simulated host needs sshd and the real xl parser (make install)")
    with sim_host(tmp_path, "xen1") as host:
        client: paramiko.SSHClient = ssh_client(host)
        try:

            def run(command: str) -> Ran:
                rc, out, err = ssh_run(client, command, timeout=120)
                return Ran(rc, out, err)

            yield Side("simulated", run)
        finally:
            client.close()
            ssh_run_local_cleanup()


def ssh_run_local_cleanup() -> None:
    # The simulated side's files are this machine's.
    for name in ("cmp.cfg", "disk0.img", "disk1.img"):
        Path(WORK, name).unlink(missing_ok=True)
    if Path(WORK).is_dir():
        Path(WORK).rmdir()


@pytest.fixture
def real(xenlab: LabInfo, xenlab_ssh: Callable[..., Dom0]) -> Iterator[Side]:
    dom0 = xenlab_ssh("xen1")
    dom0.run(f"sudo -n xl destroy {DOMAIN}")  # a leftover of an interrupted run

    def run(command: str) -> Ran:
        done = dom0.run(command, timeout=300)
        return Ran(done.rc, done.stdout, done.stderr)

    try:
        yield Side("real", run)
    finally:
        dom0.run(f"sudo -n xl destroy {DOMAIN}; rm -rf {WORK}")


@dataclass(frozen=True)
class Step:
    command: str
    shape: Callable[[str], Any] | None = None  # of stdout; None: stdout must be empty on both
    compare_stderr: bool = True


def _steps() -> list[Step]:
    xl = "sudo -n xl"
    disk1 = f"format=raw, vdev=xvdb, access=rw, target={WORK}/disk1.img"
    return [
        Step(f"{xl} info", shape.info_keys),
        Step(f"{xl} list", shape.host_table),
        Step(f"{xl} create {WORK}/cmp.cfg"),
        Step(f"{xl} list {DOMAIN}", shape.table),
        Step(f"{xl} list -l {DOMAIN}", shape.xl_json),
        Step(f"{xl} sched-credit -d {DOMAIN} -w 512"),
        Step(f"{xl} sched-credit -d {DOMAIN}", shape.table),
        Step(f"{xl} block-list {DOMAIN}", shape.table),
        Step(f"{xl} block-attach {DOMAIN} {shlex.quote(disk1)}"),
        Step(f"{xl} block-list {DOMAIN}", shape.table),
        Step(f"{xl} block-detach {DOMAIN} xvdb"),
        Step(f"{xl} network-list {DOMAIN}", shape.table),
        Step(f"{xl} network-attach {DOMAIN} mac={MAC_HOTPLUG} bridge=xenbr0"),
        Step(f"{xl} network-list {DOMAIN}", shape.table),
        Step(f"{xl} network-detach {DOMAIN} {MAC_HOTPLUG}"),
        Step(f"{xl} network-list {DOMAIN}", shape.table),
        Step("sudo -n xentop -b -i 2 -d 1", shape.xentop),
        # What the executor must read when things go wrong.
        Step(f"{xl} list nosuchdomain", shape.blank),
        Step(f"{xl} block-list nosuchdomain", shape.table),
        Step(f"{xl} network-list nosuchdomain", shape.table),
        Step(f"{xl} destroy nosuchdomain", shape.blank),
        Step(f"{xl} shutdown nosuchdomain", shape.blank),
        Step(f"{xl} sched-credit -d nosuchdomain", shape.blank),
        Step(f"{xl} block-detach {DOMAIN} xvdz", shape.blank),
        Step(f"{xl} network-detach {DOMAIN} {MAC_NONE}", shape.blank),
        Step(f"{xl} create {WORK}/missing.cfg", shape.blank),
        Step(f"{xl} destroy {DOMAIN}"),
        Step(f"{xl} list {DOMAIN}", shape.blank),
    ]


def _prepare(side: Side) -> None:
    quoted = shlex.quote(CONFIG)
    done = side.run(
        f"mkdir -p {WORK} && printf %s {quoted} > {WORK}/cmp.cfg"
        f" && truncate -s 16M {WORK}/disk0.img {WORK}/disk1.img"
    )
    assert done.rc == 0, f"{side.name}: {done}"


def _wait_up(root: Dom0, timeout: float = 240) -> None:
    """Hot-plug needs the guest's frontends: wait until its initramfs says it is up."""
    deadline = time.monotonic() + timeout
    console = f"/var/log/xen/console/guest-{DOMAIN}.log"
    while "XENLAB-DOMU-UP" not in root.run(f"cat {console} 2>/dev/null").stdout:
        assert time.monotonic() < deadline, f"{DOMAIN} did not come up:\n" + tail(console)
        time.sleep(3)


def test_simulated_host_prints_what_the_real_one_prints(
    real: Side, simulated: Side, xenlab_ssh: Callable[..., Dom0]
) -> None:
    for side in (real, simulated):
        _prepare(side)
    differences: list[str] = []
    for step in _steps():
        got = {side.name: side.run(step.command) for side in (real, simulated)}
        if step.command.endswith("/cmp.cfg") and got["real"].rc == 0:
            _wait_up(xenlab_ssh("xen1", user="root"))
        a, b = got["real"], got["simulated"]
        problems = []
        if a.rc != b.rc:
            problems.append(f"exit code: real {a.rc}, simulated {b.rc}")
        if step.shape is None:
            if shape.blank(a.stdout) != shape.blank(b.stdout):
                problems.append("stdout differs")
        else:
            mine, theirs = step.shape(a.stdout), step.shape(b.stdout)
            if mine != theirs and isinstance(mine, set) and isinstance(theirs, set):
                only_real, only_sim = sorted(mine - theirs), sorted(theirs - mine)
                problems.append(f"stdout shape: only real {only_real}\n  only simulated {only_sim}")
            elif mine != theirs:
                problems.append(f"stdout shape: real {mine!r}\n  simulated {theirs!r}")
        if step.compare_stderr and shape.blank(a.stderr) != shape.blank(b.stderr):
            problems.append(f"stderr: real {shape.blank(a.stderr)!r}\n  simulated {shape.blank(b.stderr)!r}")
        if problems:
            differences.append(
                f"$ {step.command}\n  " + "\n  ".join(problems) + f"\n  real: {a}\n  simulated: {b}"
            )
    assert not differences, "the simulator differs from real Xen 4.17:\n\n" + "\n\n".join(differences)
