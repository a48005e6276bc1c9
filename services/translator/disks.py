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

from services.translator.resolve import DEFAULTS, Findings, Resolver, control_problem, is_yes, small_number
from services.translator.vm_xml import VmTemplate
from services.translator.xlconfig import DiskSpec, DomainType, disk_target_problem

__all__ = ["DEFAULT_DATASTORE_LOCATION", "DiskPlan", "driver_spec", "plan_disks", "vdev_slot"]

DEFAULT_DATASTORE_LOCATION = "/var/lib/one//datastores"
_BUILTIN_DRIVER = ("tap:aio:", "the built-in default disk driver")
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


@functools.lru_cache(maxsize=256)
def _location(ds_id: str, location: str) -> tuple[str | None, str | None]:
    """(the system datastore's directory, or None; why `location` cannot be its parent, or None);
    pure, so cached: a cloud has a few datastores."""
    digits = _DIGITS.match(ds_id)
    if digits is None:
        return None, None
    problem = control_problem(location) or (None if location.startswith("/") else "is not an absolute path")
    if problem:
        return None, problem
    return f"{location.rstrip('/')}/{digits.group(1)}", None


def _system_dir(vm: VmTemplate, resolver: Resolver, findings: Findings) -> str | None:
    history = vm.history
    if history is None:
        findings.refuse(
            "HISTORY_RECORDS/HISTORY",
            "the VM has no history record, so its system datastore is unknown: "
            "translate the VM once oned has placed it on a host",
        )
        return None
    ds_location = history.ds_location
    if ds_location and ds_location.strip():
        location = ds_location.strip()
        location_path = "HISTORY_RECORDS/HISTORY/DS_LOCATION"
    else:
        location = resolver.value("DATASTORE_LOCATION", from_template=False) or ""
        location_path = f"{DEFAULTS}/DATASTORE_LOCATION"
        if not location:
            location, location_path = DEFAULT_DATASTORE_LOCATION, "the built-in DATASTORE_LOCATION"
    datastore, problem = _location(history.ds_id or "", location)
    if datastore is None and problem is None:
        findings.refuse("HISTORY_RECORDS/HISTORY/DS_ID", "the last history record has no numeric DS_ID")
        return None
    if problem:
        findings.refuse(location_path, f"the datastore location {location!r} {problem}")
        return None
    return f"{datastore}/{vm.id}"


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


class _Device(NamedTuple):
    """What the attributes naming one disk's device mean, and what is wrong with them."""

    disk_id: int | None
    id_problem: str | None  # for <disk>/DISK_ID
    target: str | None
    target_problem: str | None  # for <disk>/TARGET
    formats: tuple[str, str | None] | None  # (format, backendtype)
    driver_problem: str | None  # for the DRIVER's path
    driver_key: str | None  # DRIVER or TYPE of the disk, None for the default driver
    cdrom: bool
    readonly: bool


def _device(
    disk_id: str | None, target: str | None, driver: str, driver_key: str | None, cdrom: bool, readonly: bool
) -> _Device:
    number = small_number(disk_id) if disk_id else None
    id_problem = (
        "has no numeric DISK_ID: oned numbers every disk of a VM it deploys" if number is None else None
    )
    name = target.strip() if target else ""
    target_problem = (
        _target_problem(name) if name else f"the disk has no TARGET: name its device, e.g. {_TARGET_HELP}"
    )
    formats = driver_spec(driver)
    driver_problem = (
        f"DRIVER {driver!r} means nothing to xl 4.17: {_DRIVERS_HELP}" if formats is None else None
    )
    return _Device(
        number,
        id_problem,
        None if target_problem else name,
        target_problem,
        formats,
        driver_problem,
        driver_key,
        cdrom,
        readonly,
    )


@functools.lru_cache(maxsize=1024)
def _disk_device(
    disk_id: str | None,
    target: str | None,
    kind: str | None,
    driver: str | None,
    readonly: str | None,
    default_driver: str,
) -> _Device:
    """A DISK's device from its DISK_ID, TARGET, TYPE, DRIVER and READONLY (and the default
    DRIVER); pure, so cached: the same images are attached the same way to many VMs."""
    kind = kind.strip().upper() if kind else ""
    cdrom = kind == "CDROM"
    if driver:
        key: str | None = "DRIVER"
    elif kind == "BLOCK":
        driver, key = "phy:", "TYPE"
    else:
        driver, key = default_driver, None
    return _device(disk_id, target, driver, key, cdrom, cdrom or is_yes(readonly or ""))


@functools.lru_cache(maxsize=256)
def _context_device(
    disk_id: str | None, target: str | None, driver: str | None, default_driver: str, hvm: bool
) -> _Device:
    """The CONTEXT disk's device, `_disk_device` for CONTEXT; pure, so cached."""
    # A read-only IDE disk cannot be emulated on HVM, and the context is an ISO image anyway.
    if driver:
        return _device(disk_id, target, driver, "DRIVER", hvm, True)
    return _device(disk_id, target, default_driver, None, hvm, True)


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


# The paths of the first disks, written once (every translation names its disks).
_DISK_PATHS = tuple(f"TEMPLATE/DISK[{number}]" for number in range(33))


def plan_disks(vm: VmTemplate, resolver: Resolver, dtype: DomainType, findings: Findings) -> DiskPlan:
    vectors = vm.template.vectors("DISK")
    context = vm.template.vector_exact("CONTEXT")
    context_target = context is not None and bool((context.get_exact("TARGET") or "").strip())
    if context is not None and not context_target:
        findings.warn(
            "TEMPLATE/CONTEXT",
            "has no TARGET, so the VM starts without its context disk "
            "(upstream: could not find target device to attach context)",
        )
    if not vectors and not context_target:
        return DiskPlan((), {})
    system_dir = _system_dir(vm, resolver, findings)
    defaults = resolver.defaults.vector_exact("DISK")
    default_driver = defaults.get_exact("DRIVER") if defaults is not None else None
    if default_driver:
        default_driver_path = f"{DEFAULTS}/DISK/DRIVER"
    else:
        default_driver, default_driver_path = _BUILTIN_DRIVER
    seen_ids: dict[int, str] = {}
    seen_targets: dict[str, str] = {}
    specs: list[DiskSpec] = []
    paths: list[str] = []
    cdrom_by_id: dict[int, bool] = {}

    def claim(path: str, device: _Device) -> tuple[int | None, str | None]:
        """Refuses what is wrong with the disk's DISK_ID, TARGET and DRIVER, and an id or a target
        an earlier disk has; gives the id and the target left to use."""
        disk_id = device.disk_id
        if disk_id is None:
            findings.refuse(f"{path}/DISK_ID", str(device.id_problem))
        elif disk_id in seen_ids:
            findings.refuse(
                f"{path}/DISK_ID", f"DISK_ID {disk_id} is also the DISK_ID of {seen_ids[disk_id]}"
            )
            disk_id = None
        else:
            seen_ids[disk_id] = path
        target = device.target
        if target is None:
            findings.refuse(f"{path}/TARGET", str(device.target_problem))
        formats = device.formats
        if formats is None:
            key = device.driver_key
            findings.refuse(f"{path}/{key}" if key else default_driver_path, str(device.driver_problem))
        if target is not None:
            first = seen_targets.setdefault(target, path)
            if first != path:
                findings.refuse(
                    f"{path}/TARGET", f"{target} is also the TARGET of {first}: every disk needs its own"
                )
                target = None
        return disk_id, target

    def add(path: str, device: _Device) -> None:
        disk_id = device.disk_id
        target = device.target
        if (
            disk_id is not None
            and target is not None
            and device.formats is not None
            and disk_id not in seen_ids
            and target not in seen_targets
        ):
            # The common case, with nothing to refuse: what `claim` does then, in short.
            seen_ids[disk_id] = path
            seen_targets[target] = path
        else:
            disk_id, target = claim(path, device)
        formats = device.formats
        if disk_id is None or target is None or formats is None or system_dir is None:
            return
        file = f"{system_dir}/disk.{disk_id}"
        # disk_target_problem(file), whose answer for a printable path ending in a digit is None.
        problem = None if file.isprintable() else disk_target_problem(file)
        if problem:
            findings.refuse(path, f"the disk's path {file!r} {problem}")
            return
        specs.append(
            # Positional (a call with keywords costs twice as much): target, vdev, format,
            # access, devtype, backendtype.
            DiskSpec(
                file,
                target,
                formats[0],
                "ro" if device.readonly else "rw",
                "cdrom" if device.cdrom else "disk",
                formats[1],
            )
        )
        paths.append(path)
        cdrom_by_id[disk_id] = device.cdrom

    for number, vector in enumerate(vectors, start=1):
        get = vector.get_exact
        device = _disk_device(
            get("DISK_ID"), get("TARGET"), get("TYPE"), get("DRIVER"), get("READONLY"), default_driver
        )
        add(_DISK_PATHS[number] if number < len(_DISK_PATHS) else f"TEMPLATE/DISK[{number}]", device)
    if context is not None and context_target:
        get = context.get_exact
        device = _context_device(get("DISK_ID"), get("TARGET"), get("DRIVER"), default_driver, dtype == "hvm")
        add("TEMPLATE/CONTEXT", device)
    if dtype == "hvm":
        _check_hvm([_Disk(path, spec) for path, spec in zip(paths, specs, strict=True)], findings)
    return DiskPlan(tuple(specs), cdrom_by_id)
