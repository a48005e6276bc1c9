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

import functools
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


# (refused, not only warned; the OS key it is about; the sentence)
_Finding = tuple[bool, str, str]


def _path_value(key: str, value: str | None, found: list[_Finding]) -> str | None:
    if not value:
        return None
    problem = None if value.isprintable() else control_problem(value)
    if problem:
        found.append((True, key, problem))
        return None
    return value


def _cmdline(root: str | None, extra: str | None, found: list[_Finding]) -> str | None:
    parts = []
    if root:
        value = root.strip()
        if _BLANK.search(value) or control_problem(value):
            found.append(
                (
                    True,
                    "ROOT",
                    f"ROOT {root!r} must be one device name (xvda1, /dev/xvda1, UUID=...) without blanks",
                )
            )
        else:
            # Upstream writes root = '/dev/<ROOT>'; a path or a UUID=/LABEL= form is kept as given.
            parts.append(f"root={value}" if value.startswith("/") or "=" in value else f"root=/dev/{value}")
    if extra:
        problem = None if extra.isprintable() else control_problem(extra)
        if problem:
            found.append((True, "KERNEL_CMD", problem))
        else:
            parts.append(extra)
    return " ".join(parts) if parts else None


@functools.lru_cache(maxsize=256)
def _os_settings(
    kernel: str | None,
    bootloader: str | None,
    machine: str | None,
    root: str | None,
    kernel_cmd: str | None,
    initrd: str | None,
) -> tuple[OsSettings, tuple[_Finding, ...]]:
    """The OS settings these OS values give, and what is wrong with them, in order; pure,
    so cached: the VMs of a cloud boot in a few ways."""
    found: list[_Finding] = []
    inferred: DomainType = "pv" if kernel or bootloader else "hvm"
    dtype = inferred
    if machine:
        chosen = _TYPES.get(machine.strip().lower())
        if chosen is None:
            found.append(
                (
                    False,
                    "MACHINE",
                    f"{machine!r} is not a Xen guest type (pv, pvh or hvm) and is ignored: "
                    f"the VM is {inferred}",
                )
            )
        else:
            dtype = chosen
    if dtype != "hvm" and not kernel and not bootloader:
        found.append(
            (
                True,
                "MACHINE",
                f"a {dtype} VM needs OS/KERNEL (direct kernel boot) or OS/BOOTLOADER (e.g. pygrub)",
            )
        )
    if kernel:
        if bootloader:
            found.append((False, "BOOTLOADER", "ignored: OS/KERNEL is set, so the kernel is booted directly"))
        cmdline = _cmdline(root, kernel_cmd, found)
        settings = OsSettings(
            dtype,
            kernel=_path_value("KERNEL", kernel, found),
            ramdisk=_path_value("INITRD", initrd, found),
            cmdline=cmdline,
        )
    elif bootloader and dtype == "hvm":
        found.append((False, "BOOTLOADER", "ignored: an HVM VM boots from its BIOS, not a bootloader"))
        settings = OsSettings(dtype)
    else:
        settings = OsSettings(dtype, bootloader=_path_value("BOOTLOADER", bootloader, found))
    return settings, tuple(found)


def resolve_os(resolver: Resolver, findings: Findings) -> OsSettings:
    os = resolver.sub_values("OS")
    settings, found = _os_settings(
        os("KERNEL") or None,
        os("BOOTLOADER") or None,
        os("MACHINE") or None,
        os("ROOT") or None,
        os("KERNEL_CMD") or None,
        os("INITRD") or None,
    )
    for refused, key, sentence in found:
        # Where the value came from (the template, else the defaults) only matters now.
        path = resolver.sub_path("OS", key)
        if refused:
            findings.refuse(path, sentence)
        else:
            findings.warn(path, sentence)
    return settings


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
