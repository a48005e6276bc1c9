"""DISK and CONTEXT vectors → xl disk specs.

Each disk's file is `<DS_LOCATION>/<DS_ID>/<VMID>/disk.<DISK_ID>` in the system
datastore of the VM's last history record (4.x writes DS_LOCATION there; later
versions do not, so the driver defaults' DATASTORE_LOCATION, else oned's default
`/var/lib/one//datastores`, is used).

DRIVER is read like libxlu reads the old `prefix:` disk syntax: the format
(`raw`, `qcow2`, `qcow`, `vhd`, `qed`) is kept; `file:`, `tap:`, `tap2:`,
`tapdisk:`, `aio:`, `ioemu:` are ignored (xl 4.17 does the same; an explicit
backendtype=tap would make libxl 4.17 refuse the disk at create time, as blktap2
is gone); `phy:` asks for the block backend (backendtype=phy, raw only).
"""

from __future__ import annotations

import functools
import re
from typing import NamedTuple

from onexen.template import Vector
from services.translator.resolve import Findings, Resolver, Sourced, control_problem, is_yes
from services.translator.vm_xml import VmTemplate
from services.translator.xlconfig import DiskSpec, DomainType, disk_target_problem

__all__ = ["DEFAULT_DATASTORE_LOCATION", "DiskPlan", "driver_spec", "plan_disks", "vdev_slot"]

DEFAULT_DATASTORE_LOCATION = "/var/lib/one//datastores"
_BUILTIN_DRIVER = Sourced("tap:aio:", "the built-in default disk driver")
_FORMATS = frozenset({"raw", "qcow", "qcow2", "vhd", "qed"})
_IGNORED_PREFIXES = frozenset({"file", "tap", "tap2", "tapdisk", "aio", "ioemu"})
_DRIVERS_HELP = (
    "use raw, qcow2, qcow, vhd or qed, optionally after phy:, file:, tap:aio: or tap2:tapdisk:aio:"
)
# Bounded: an id is a 32-bit number in oned, and int() refuses very long digit strings.
_DIGITS = re.compile(r"\s*([0-9]{1,10})\s*\Z")
# Bounded like the ids: libxl numbers at most 2**20 disks and 255 partitions.
_TARGET = re.compile(r"(xvd|hd|sd)([a-z]{1,6})([1-9][0-9]{0,5})?\Z")
# libxl__device_disk_dev_number: highest disk index and partition per prefix.
_LIMITS = {"xvd": ((1 << 20) - 1, 255), "hd": (3, 63), "sd": (15, 15)}
_TARGET_HELP = "xvda, xvdb, ... (PV drivers), hda-hdd (IDE) or sda-sdp (SCSI)"
_IDE_HELP = (
    "IDE has four devices, hda to hdd: use xvd* (PV drivers) or sd* (SCSI) targets for more disks, "
    "as the Xen guide advises"
)


class DiskPlan(NamedTuple):
    specs: tuple[DiskSpec, ...]
    cdrom_by_id: dict[int, bool]  # DISK_ID → whether it is a CD-ROM (for OS/BOOT diskN)


class _Disk(NamedTuple):
    path: str  # TEMPLATE/DISK[n] or TEMPLATE/CONTEXT
    disk_id: int
    spec: DiskSpec


@functools.lru_cache(maxsize=256)
def driver_spec(driver: str) -> tuple[str, str | None] | None:
    """(format, backendtype) for an OpenNebula DRIVER, or None when xl has no meaning for it."""
    fmt: str | None = None
    backend: str | None = None
    for token in driver.strip().lower().split(":"):
        if not token or token in _IGNORED_PREFIXES:
            continue
        if token == "phy":
            backend = "phy"
        elif token in _FORMATS and fmt in (None, token):
            fmt = token
        else:
            return None
    fmt = fmt or "raw"
    if backend == "phy" and fmt != "raw":
        return None
    return fmt, backend


@functools.lru_cache(maxsize=1024)
def vdev_slot(vdev: str) -> tuple[str, int, int] | None:
    """(prefix, disk index, partition) of a target name libxl can number, else None."""
    match = _TARGET.match(vdev)
    if match is None:
        return None
    prefix, letters, part = match.groups()
    index = 0
    for char in letters:
        index = index * 26 + ord(char) - 96
    return prefix, index - 1, int(part or 0)


def _system_dir(vm: VmTemplate, resolver: Resolver, findings: Findings) -> str | None:
    history = vm.history
    if history is None:
        findings.refuse(
            "HISTORY_RECORDS/HISTORY",
            "the VM has no history record, so its system datastore is unknown: "
            "translate the VM once oned has placed it on a host",
        )
        return None
    ds_id = _DIGITS.match(history.ds_id or "")
    if ds_id is None:
        findings.refuse("HISTORY_RECORDS/HISTORY/DS_ID", "the last history record has no numeric DS_ID")
        return None
    if history.ds_location and history.ds_location.strip():
        location = Sourced(history.ds_location.strip(), "HISTORY_RECORDS/HISTORY/DS_LOCATION")
    else:
        location = resolver.single("DATASTORE_LOCATION", from_template=False) or Sourced(
            DEFAULT_DATASTORE_LOCATION, "the built-in DATASTORE_LOCATION"
        )
    problem = control_problem(location.value) or (
        None if location.value.startswith("/") else "is not an absolute path"
    )
    if problem:
        findings.refuse(location.path, f"the datastore location {location.value!r} {problem}")
        return None
    return f"{location.value.rstrip('/')}/{ds_id.group(1)}/{vm.id}"


def _disk_id(vector: Vector, path: str, seen: dict[int, str], findings: Findings) -> int | None:
    match = _DIGITS.match(vector.get_exact("DISK_ID") or "")
    if match is None:
        findings.refuse(
            f"{path}/DISK_ID", "has no numeric DISK_ID: oned numbers every disk of a VM it deploys"
        )
        return None
    disk_id = int(match.group(1))
    if disk_id in seen:
        findings.refuse(f"{path}/DISK_ID", f"DISK_ID {disk_id} is also the DISK_ID of {seen[disk_id]}")
        return None
    seen[disk_id] = path
    return disk_id


@functools.lru_cache(maxsize=1024)
def _target_problem(target: str) -> str | None:
    """Why `target` cannot be a disk's device name, or None; pure, so cached."""
    slot = vdev_slot(target)
    if slot is None:
        return f"{target!r} is not a Xen disk device name: use {_TARGET_HELP}"
    prefix, index, part = slot
    max_index, max_part = _LIMITS[prefix]
    if prefix == "hd" and index > max_index:
        return f"{target} does not exist: {_IDE_HELP}"
    if index > max_index or part > max_part:
        return f"{target} is beyond what Xen can number: use {_TARGET_HELP}"
    return None


def _target(vector: Vector, path: str, findings: Findings) -> str | None:
    target = (vector.get_exact("TARGET") or "").strip()
    if not target:
        findings.refuse(f"{path}/TARGET", f"the disk has no TARGET: name its device, e.g. {_TARGET_HELP}")
        return None
    problem = _target_problem(target)
    if problem:
        findings.refuse(f"{path}/TARGET", problem)
        return None
    return target


def _format(driver: Sourced, findings: Findings) -> tuple[str, str | None] | None:
    spec = driver_spec(driver.value)
    if spec is None:
        findings.refuse(driver.path, f"DRIVER {driver.value!r} means nothing to xl 4.17: {_DRIVERS_HELP}")
    return spec


def _check_hvm(disks: list[_Disk], findings: Findings) -> None:
    # qemu-xen emulates hda-hdd, xvda-xvdd (same slots) and every CD-ROM as IDE.
    ide_slots: dict[int, _Disk] = {}
    for disk in disks:
        slot = vdev_slot(disk.spec.vdev)
        if slot is None:
            continue
        prefix, index, _ = slot
        cdrom = disk.spec.devtype == "cdrom"
        if not cdrom and prefix == "sd":
            continue
        if index > 3:
            if cdrom:
                findings.refuse(
                    f"{disk.path}/TARGET",
                    f"an HVM CD-ROM is an IDE device and {disk.spec.vdev} is not one of the four: "
                    "use hda-hdd (or xvda-xvdd)",
                )
            continue
        other = ide_slots.get(index)
        if other is not None and other.spec.vdev != disk.spec.vdev:
            findings.refuse(
                f"{disk.path}/TARGET",
                f"on an HVM VM {disk.spec.vdev} and {other.spec.vdev} ({other.path}) are both emulated as "
                f"IDE disk {index}: give them different letters",
            )
        ide_slots.setdefault(index, disk)
        if not cdrom and disk.spec.access == "ro":
            findings.refuse(
                f"{disk.path}/READONLY",
                f"qemu-xen cannot emulate a read-only IDE disk ({disk.spec.vdev} on an HVM VM): "
                "use an sd* target, an xvd* target after xvdd, or READONLY=NO",
            )


def plan_disks(vm: VmTemplate, resolver: Resolver, dtype: DomainType, findings: Findings) -> DiskPlan:
    vectors = vm.template.vectors("DISK")
    context = vm.template.vector_exact("CONTEXT")
    context_target = bool(context and (context.get_exact("TARGET") or "").strip())
    if context is not None and not context_target:
        findings.warn(
            "TEMPLATE/CONTEXT",
            "has no TARGET, so the VM starts without its context disk "
            "(upstream: could not find target device to attach context)",
        )
    if not vectors and not context_target:
        return DiskPlan((), {})
    system_dir = _system_dir(vm, resolver, findings)
    default_driver = resolver.default_sub("DISK", "DRIVER") or _BUILTIN_DRIVER
    seen_ids: dict[int, str] = {}
    seen_targets: dict[str, str] = {}
    disks: list[_Disk] = []

    def add(path: str, vector: Vector, driver: Sourced, cdrom: bool, readonly: bool) -> None:
        disk_id = _disk_id(vector, path, seen_ids, findings)
        target = _target(vector, path, findings)
        formats = _format(driver, findings)
        if target is not None:
            first = seen_targets.setdefault(target, path)
            if first != path:
                findings.refuse(
                    f"{path}/TARGET", f"{target} is also the TARGET of {first}: every disk needs its own"
                )
                target = None
        if disk_id is None or target is None or formats is None or system_dir is None:
            return
        file = f"{system_dir}/disk.{disk_id}"
        problem = disk_target_problem(file)
        if problem:
            findings.refuse(path, f"the disk's path {file!r} {problem}")
            return
        spec = DiskSpec(
            target=file,
            vdev=target,
            format=formats[0],
            backendtype=formats[1],
            access="ro" if readonly else "rw",
            devtype="cdrom" if cdrom else "disk",
        )
        disks.append(_Disk(path, disk_id, spec))

    for number, vector in enumerate(vectors, start=1):
        path = f"TEMPLATE/DISK[{number}]"
        kind = (vector.get_exact("TYPE") or "").strip().upper()
        cdrom = kind == "CDROM"
        driver = (
            Resolver.own(vector, path, "DRIVER")
            or (Sourced("phy:", f"{path}/TYPE") if kind == "BLOCK" else None)
            or default_driver
        )
        add(path, vector, driver, cdrom, cdrom or is_yes(vector.get_exact("READONLY") or ""))
    if context is not None and context_target:
        path = "TEMPLATE/CONTEXT"
        driver = Resolver.own(context, path, "DRIVER") or default_driver
        # A read-only IDE disk cannot be emulated on HVM, and the context is an ISO image anyway.
        add(path, context, driver, dtype == "hvm", True)
    if dtype == "hvm":
        _check_hvm(disks, findings)
    return DiskPlan(tuple(d.spec for d in disks), {d.disk_id: d.spec.devtype == "cdrom" for d in disks})
