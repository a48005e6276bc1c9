"""Can this machine run the lab? Each check is a pure function of what it is given, plus a gatherer."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

from .errors import Refused

GIB = 1024**3
# One lab host is a QEMU with 2 GiB of guest RAM and a 256 MiB translation cache (~2.4 GiB resident).
MEMORY_PER_HOST = 3 * GIB
DISK_FOR_BUILD = 6 * GIB  # debs (~0.3), pristine base rootfs (~1.3), a work copy and the image
DISK_PER_HOST = 1 * GIB  # the qcow2 overlay, the config drive and the serial log


def check_arch(machine: str) -> None:
    if machine not in ("x86_64", "amd64"):
        raise Refused("arch", f"this machine is {machine}, the lab needs x86-64 (Xen x86 under QEMU TCG)")


def mem_available(meminfo: str) -> int:
    """MemAvailable from /proc/meminfo text, in bytes."""
    for line in meminfo.splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise ValueError("no MemAvailable in /proc/meminfo")


def check_memory(available: int, hosts: int) -> None:
    need = MEMORY_PER_HOST * hosts
    if available < need:
        raise Refused(
            "memory",
            f"{available / GIB:.1f} GiB of memory available, the lab needs {need / GIB:.0f} GiB "
            f"({MEMORY_PER_HOST / GIB:.0f} GiB per host, {hosts} host{'s' if hosts > 1 else ''})",
        )


def check_disk(path: Path, free: int, need: int, what: str) -> None:
    if free < need:
        raise Refused("disk", f"{free / GIB:.1f} GiB free under {path}, {what} needs {need / GIB:.0f} GiB")


def check_root(uid: int, missing: Iterable[str]) -> None:
    missing = list(missing)
    if missing and uid != 0:
        raise Refused(
            "root", f"Debian packages missing ({' '.join(missing)}) and not root: run as root or install them"
        )


def missing_packages(packages: Iterable[str]) -> list[str]:
    """The packages dpkg does not report as installed."""
    missing = []
    for package in packages:
        done = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
        if "install ok installed" not in done.stdout:
            missing.append(package)
    return missing


def free_bytes(path: Path) -> int:
    """Free space on the filesystem that holds `path` (or its nearest existing parent)."""
    probe = path
    while not probe.exists():
        probe = probe.parent
    return shutil.disk_usage(probe).free


def check_machine(
    *,
    hosts: int = 0,
    build_dir: Path | None = None,
    run_dir: Path | None = None,
    packages: Iterable[str] = (),
) -> None:
    """Raise Refused with a one-line reason when this machine cannot build or run `hosts` lab hosts."""
    check_arch(platform.machine())
    check_root(os.geteuid(), missing_packages(packages))
    if build_dir is not None:
        check_disk(build_dir, free_bytes(build_dir), DISK_FOR_BUILD, "building the lab")
    if hosts:
        check_memory(mem_available(Path("/proc/meminfo").read_text()), hosts)
        if run_dir is not None:
            check_disk(run_dir, free_bytes(run_dir), DISK_PER_HOST * hosts, f"running {hosts} lab host(s)")
