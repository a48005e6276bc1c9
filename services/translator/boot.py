"""OS vector → the domain type, how it boots, and the HVM boot order.

Type: direct kernel boot (OS/KERNEL) or a bootloader (OS/BOOTLOADER, e.g.
pygrub) is PV, neither is HVM, as upstream; OS/MACHINE = pv | pvh | hvm
overrides that (PVH is only reachable this way). Any other MACHINE value (a KVM
machine type such as q35) is ignored with a warning.

OS/BOOT is read in both of its forms: OpenNebula 4.x `hd,cdrom,network,fd` and
5.x+ `disk0,nic1` (by DISK_ID / NIC_ID; the upstream driver fails on these),
mapped to qemu's boot letters c, d, n, a. A letter given twice is kept once:
qemu refuses `-boot order=cc`.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from services.translator.resolve import Findings, Resolver, Sourced, control_problem
from services.translator.xlconfig import DomainType

__all__ = ["OsSettings", "boot_order", "resolve_os"]

_TYPES: dict[str, DomainType] = {"pv": "pv", "pvh": "pvh", "hvm": "hvm"}
_LEGACY_BOOT = {"hd": "c", "cdrom": "d", "network": "n", "fd": "a"}
_DEVICE = re.compile(r"(disk|nic)([0-9]{1,10})\Z")
_BLANK = re.compile(r"\s")


class OsSettings(NamedTuple):
    type: DomainType
    kernel: str | None = None
    ramdisk: str | None = None
    cmdline: str | None = None
    bootloader: str | None = None


def _path_value(item: Sourced | None, findings: Findings) -> str | None:
    if item is None:
        return None
    problem = control_problem(item.value)
    if problem:
        findings.refuse(item.path, problem)
        return None
    return item.value


def _cmdline(root: Sourced | None, extra: Sourced | None, findings: Findings) -> str | None:
    parts = []
    if root is not None:
        value = root.value.strip()
        if _BLANK.search(value) or control_problem(value):
            findings.refuse(
                root.path,
                f"ROOT {root.value!r} must be one device name (xvda1, /dev/xvda1, UUID=...) without blanks",
            )
        else:
            # Upstream writes root = '/dev/<ROOT>'; a path or a UUID=/LABEL= form is kept as given.
            parts.append(f"root={value}" if value.startswith("/") or "=" in value else f"root=/dev/{value}")
    if extra is not None:
        problem = control_problem(extra.value)
        if problem:
            findings.refuse(extra.path, problem)
        else:
            parts.append(extra.value)
    return " ".join(parts) if parts else None


def resolve_os(resolver: Resolver, findings: Findings) -> OsSettings:
    os = resolver.subs("OS")
    kernel = os("KERNEL")
    bootloader = os("BOOTLOADER")
    machine = os("MACHINE")
    inferred: DomainType = "pv" if kernel or bootloader else "hvm"
    dtype = inferred
    if machine is not None:
        chosen = _TYPES.get(machine.value.strip().lower())
        if chosen is None:
            findings.warn(
                machine.path,
                f"{machine.value!r} is not a Xen guest type (pv, pvh or hvm) and is ignored: "
                f"the VM is {inferred}",
            )
        else:
            dtype = chosen
    if dtype != "hvm" and kernel is None and bootloader is None:
        assert machine is not None
        findings.refuse(
            machine.path,
            f"a {dtype} VM needs OS/KERNEL (direct kernel boot) or OS/BOOTLOADER (e.g. pygrub)",
        )
    if kernel is not None:
        if bootloader is not None:
            findings.warn(bootloader.path, "ignored: OS/KERNEL is set, so the kernel is booted directly")
        cmdline = _cmdline(os("ROOT"), os("KERNEL_CMD"), findings)
        return OsSettings(
            dtype,
            kernel=_path_value(kernel, findings),
            ramdisk=_path_value(os("INITRD"), findings),
            cmdline=cmdline,
        )
    if bootloader is not None and dtype == "hvm":
        findings.warn(bootloader.path, "ignored: an HVM VM boots from its BIOS, not a bootloader")
        return OsSettings(dtype)
    return OsSettings(dtype, bootloader=_path_value(bootloader, findings))


def boot_order(
    boot: Sourced | None, cdrom_by_id: dict[int, bool], nic_ids: set[int], findings: Findings
) -> str | None:
    """qemu boot letters for OS/BOOT, or None when it is not set."""
    if boot is None:
        return None
    letters: list[str] = []
    for raw in boot.value.split(","):
        token = raw.strip().lower()
        if not token:
            continue
        letter = _LEGACY_BOOT.get(token)
        device = _DEVICE.match(token)
        if letter is None and device is not None:
            kind, number = device.group(1), int(device.group(2))
            if kind == "disk" and number in cdrom_by_id:
                letter = "d" if cdrom_by_id[number] else "c"
            elif kind == "nic" and number in nic_ids:
                letter = "n"
            else:
                what = "DISK_ID" if kind == "disk" else "NIC_ID"
                findings.refuse(boot.path, f"{raw.strip()} names no {kind} of this VM: no {what} {number}")
                continue
        if letter is None:
            findings.refuse(
                boot.path,
                f"unknown boot device {raw.strip()!r}: use disk<N>, nic<N> (DISK_ID, NIC_ID) "
                "or the 4.x names hd, cdrom, network, fd",
            )
            continue
        if letter not in letters:
            letters.append(letter)
    return "".join(letters) or None
