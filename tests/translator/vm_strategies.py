"""Hypothesis strategies for valid OpenNebula VMs, and what xl must make of each one.

`expected_json` is written from the spec's rules, not from the translator's
code, so the proof tests compare two independent readings of the rules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st
from translator_helpers import DS, Attr, vm_xml

DRIVERS: dict[str | None, tuple[str, str | None]] = {
    None: ("raw", None),  # the xen4 defaults: raw:
    "raw": ("raw", None),
    "raw:": ("raw", None),
    "qcow2": ("qcow2", None),
    "phy:": ("raw", "phy"),
    "file:": ("raw", None),
    "tap:aio:": ("raw", None),
    "tap2:tapdisk:aio:": ("raw", None),
}
MODELS = ["e1000", "rtl8139", "virtio-net", "netfront", "ioemu"]
OLD_BOOT = {"hd": "c", "cdrom": "d", "network": "n", "fd": "a"}
# Printable text a VNC password or a path may hold (no control characters).
SAFE_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=16)


@dataclass
class DiskCase:
    disk_id: int
    kind: str  # FILE, BLOCK, CDROM, swap, fs
    driver: str | None
    readonly: bool
    target: str = ""


@dataclass
class NicCase:
    mac: str
    bridge: str
    ip: str | None
    model: str | None
    script: str | None


@dataclass
class VmCase:
    vm_id: int
    boot_kind: str  # kernel, bootloader, none
    machine: str | None
    dtype: str
    memory: int
    memory_max: int | None
    vcpu: int | None
    vcpu_max: int | None
    cpu: Decimal | None
    kernel_cmd: str | None
    root: str | None
    initrd: str | None
    disks: list[DiskCase]
    context_id: int | None
    context_target: str | None
    nics: list[NicCase]
    graphics: dict[str, str] | None
    tablet: bool
    features: dict[str, str] = field(default_factory=dict)
    boot: list[str] = field(default_factory=list)

    def template(self) -> list[Attr]:
        attrs: list[Attr] = [("MEMORY", str(self.memory))]
        if self.memory_max is not None:
            attrs.append(("MEMORY_MAX", str(self.memory_max)))
        if self.vcpu is not None:
            attrs.append(("VCPU", str(self.vcpu)))
        if self.vcpu_max is not None:
            attrs.append(("VCPU_MAX", str(self.vcpu_max)))
        if self.cpu is not None:
            attrs.append(("CPU", str(self.cpu)))
        os: dict[str, str] = {}
        if self.boot_kind == "kernel":
            os["KERNEL"] = "/var/lib/one/kernels/vmlinuz"
            for key, value in (("INITRD", self.initrd), ("ROOT", self.root), ("KERNEL_CMD", self.kernel_cmd)):
                if value is not None:
                    os[key] = value
        elif self.boot_kind == "bootloader":
            os["BOOTLOADER"] = "/usr/lib/xen/bin/pygrub"
        if self.machine:
            os["MACHINE"] = self.machine
        if self.boot:
            os["BOOT"] = ",".join(self.boot)
        if os:
            attrs.append(("OS", os))
        for disk in self.disks:
            vector = {"DISK_ID": str(disk.disk_id), "TARGET": disk.target, "TYPE": disk.kind}
            if disk.driver is not None:
                vector["DRIVER"] = disk.driver
            vector["READONLY"] = "YES" if disk.readonly else "NO"
            attrs.append(("DISK", vector))
        if self.context_id is not None and self.context_target:
            attrs.append(("CONTEXT", {"DISK_ID": str(self.context_id), "TARGET": self.context_target}))
        for number, nic in enumerate(self.nics):
            vector = {"NIC_ID": str(number), "MAC": nic.mac, "BRIDGE": nic.bridge}
            for key, value in (("IP", nic.ip), ("MODEL", nic.model), ("SCRIPT", nic.script)):
                if value is not None:
                    vector[key] = value
            attrs.append(("NIC", vector))
        if self.graphics:
            attrs.append(("GRAPHICS", self.graphics))
        if self.tablet:
            attrs.append(("INPUT", {"TYPE": "tablet", "BUS": "usb"}))
        if self.features:
            attrs.append(("FEATURES", self.features))
        return attrs

    def xml(self) -> str:
        return vm_xml(self.template(), vm_id=self.vm_id)


def _targets(dtype: str, disks: list[DiskCase], has_context: bool) -> str | None:
    """Give every disk a target xl and qemu accept for the type; return the context's."""
    if dtype != "hvm":
        names = [f"xvd{chr(97 + i)}" for i in range(len(disks) + 1)]
        for disk, name in zip(disks, names, strict=False):
            disk.target = name
        return names[len(disks)] if has_context else None
    ide = iter(["hda", "hdb", "hdc", "hdd"])
    late_xvd = iter(["xvde", "xvdf", "xvdg", "xvdh", "xvdi"])
    scsi = iter(["sda", "sdb", "sdc", "sdd", "sde"])
    for disk in disks:
        if disk.kind == "CDROM":
            disk.target = next(ide)
        elif disk.readonly:
            disk.target = next(scsi)
        else:
            disk.target = next(late_xvd)
    return next(ide) if has_context else None


@st.composite
def vm_cases(draw: st.DrawFn) -> VmCase:
    boot_kind, machine, dtype = draw(
        st.sampled_from(
            [
                ("kernel", None, "pv"),
                ("kernel", "pv", "pv"),
                ("bootloader", None, "pv"),
                ("kernel", "pvh", "pvh"),
                ("none", None, "hvm"),
                ("none", "hvm", "hvm"),
                ("kernel", "hvm", "hvm"),
            ]
        )
    )
    memory = draw(st.integers(1, 65536))
    vcpu = draw(st.none() | st.integers(1, 16))
    n_disks = draw(st.integers(0, 4))
    disks = []
    cdroms = 0
    for disk_id in range(n_disks):
        kind = draw(st.sampled_from(["FILE", "BLOCK", "CDROM", "swap", "fs"]))
        if kind == "CDROM" and cdroms >= 3:
            kind = "FILE"
        cdroms += kind == "CDROM"
        driver = draw(st.sampled_from(list(DRIVERS)))
        disks.append(DiskCase(disk_id, kind, driver, draw(st.booleans())))
    has_context = draw(st.booleans())
    context_target = _targets(dtype, disks, has_context)
    nics = [
        NicCase(
            # OpenNebula's MACs: the locally administered 02:00 prefix, then the IPv4 address.
            mac="02:00:" + ":".join(f"{b:02x}" for b in draw(st.binary(min_size=4, max_size=4))),
            bridge=draw(st.sampled_from(["br0", "onebr.10", "xenbr1", "virbr-a"])),
            ip=draw(st.none() | st.ip_addresses(v=4).map(str)),
            model=draw(st.none() | st.sampled_from(MODELS)),
            script=draw(st.none() | st.sampled_from(["vif-bridge", "/etc/xen/scripts/vif-openvswitch"])),
        )
        for _ in range(draw(st.integers(0, 3)))
    ]
    graphics = None
    kind = draw(st.sampled_from(["none", "vnc", "spice"] if dtype == "hvm" else ["none", "vnc"]))
    if kind == "vnc":
        graphics = {"TYPE": draw(st.sampled_from(["VNC", "vnc"]))}
        if draw(st.booleans()):
            graphics["PORT"] = str(draw(st.integers(5900, 65535)))
        if draw(st.booleans()):
            graphics["LISTEN"] = draw(st.sampled_from(["0.0.0.0", "127.0.0.1", "xen1.example.org"]))
        if draw(st.booleans()):
            password = draw(SAFE_TEXT)
            graphics["PASSWD"] = password.replace(",", ";") if dtype == "pvh" else password
        if draw(st.booleans()):
            graphics["KEYMAP"] = draw(st.sampled_from(["en-us", "es", "de-ch"]))
    elif kind == "spice":
        graphics = {"TYPE": "SPICE", "PORT": str(draw(st.integers(1, 65535)))}
        if draw(st.booleans()):
            graphics["LISTEN"] = "0.0.0.0"
        if draw(st.booleans()):
            graphics["PASSWD"] = draw(SAFE_TEXT)
    features: dict[str, str] = {}
    boot: list[str] = []
    if dtype == "hvm":
        for key in ("PAE", "ACPI", "APIC", "LOCALTIME"):
            choice = draw(st.sampled_from([None, "yes", "no", "YES"]))
            if choice:
                features[key] = choice
        if draw(st.booleans()):
            features["DEVICE_MODEL"] = "/usr/libexec/xen-qemu-system-i386"
        devices = [f"disk{d.disk_id}" for d in disks] + [f"nic{i}" for i in range(len(nics))] + list(OLD_BOOT)
        boot = draw(st.lists(st.sampled_from(devices), max_size=4))
    return VmCase(
        vm_id=draw(st.integers(0, 10**6)),
        boot_kind=boot_kind,
        machine=machine,
        dtype=dtype,
        memory=memory,
        memory_max=draw(st.none() | st.integers(memory, memory * 4)),
        vcpu=vcpu,
        vcpu_max=draw(st.none() | st.integers(vcpu or 1, 32)),
        cpu=draw(st.none() | st.decimals(Decimal("0.01"), Decimal("64"), places=2)),
        kernel_cmd=draw(st.none() | st.sampled_from(["ro console=hvc0", "quiet", "init=/sbin/init x='y'"])),
        root=draw(st.none() | st.sampled_from(["xvda1", "sda2", "/dev/xvda", "LABEL=root"])),
        initrd=draw(st.none() | st.just("/var/lib/one/kernels/initrd.img")),
        disks=disks,
        context_id=n_disks if has_context else None,
        context_target=context_target,
        nics=nics,
        graphics=graphics,
        tablet=draw(st.booleans()),
        features=features,
        boot=boot,
    )


def _yes(value: str | None) -> str | None:
    return None if value is None else ("True" if value.upper() == "YES" else "False")


def expected_json(case: VmCase) -> dict[str, Any]:
    """The parts of `xl -N create`'s JSON the template decides, by the spec's rules."""
    exp: dict[str, Any] = {"type": case.dtype, "name": f"one-{case.vm_id}"}
    exp["target_memkb"] = case.memory * 1024
    exp["max_memkb"] = (case.memory_max or case.memory) * 1024
    if case.vcpu_max is not None:
        exp["max_vcpus"], exp["avail_vcpus"] = case.vcpu_max, list(range(case.vcpu or 1))
    elif case.vcpu is not None:
        exp["max_vcpus"], exp["avail_vcpus"] = case.vcpu, list(range(case.vcpu))
    else:
        exp["max_vcpus"], exp["avail_vcpus"] = None, None
    exp["weight"] = math.ceil((case.cpu if case.cpu is not None else 1) * 256)
    exp["kernel"] = exp["ramdisk"] = exp["cmdline"] = exp["bootloader"] = None
    if case.boot_kind == "kernel":
        exp["kernel"], exp["ramdisk"] = "/var/lib/one/kernels/vmlinuz", case.initrd
        parts = []
        if case.root is not None:
            root = case.root
            parts.append(f"root={root}" if root.startswith("/") or "=" in root else f"root=/dev/{root}")
        if case.kernel_cmd is not None:
            parts.append(case.kernel_cmd)
        exp["cmdline"] = " ".join(parts) or None
    elif case.boot_kind == "bootloader" and case.dtype != "hvm":
        exp["bootloader"] = "/usr/lib/xen/bin/pygrub"
    disks = []
    cdrom_by_id = {}
    for disk in case.disks:
        explicit = disk.driver is not None
        fmt, backend = DRIVERS[disk.driver]
        if not explicit and disk.kind == "BLOCK":
            fmt, backend = "raw", "phy"
        cdrom = disk.kind == "CDROM"
        cdrom_by_id[disk.disk_id] = cdrom
        entry: dict[str, Any] = {"pdev_path": f"{DS}/0/{case.vm_id}/disk.{disk.disk_id}", "vdev": disk.target}
        if backend:
            entry["backend"] = backend
        entry["format"] = fmt
        if cdrom:
            entry |= {"removable": 1, "is_cdrom": 1}
        elif not disk.readonly:
            entry["readwrite"] = 1
        disks.append(entry)
    if case.context_target:
        entry = {"pdev_path": f"{DS}/0/{case.vm_id}/disk.{case.context_id}", "vdev": case.context_target}
        entry["format"] = "raw"
        if case.dtype == "hvm":
            entry |= {"removable": 1, "is_cdrom": 1}
        cdrom_by_id[case.context_id or 0] = case.dtype == "hvm"
        disks.append(entry)
    exp["disks"] = disks or None
    nics = []
    for devid, nic in enumerate(case.nics):
        entry = {"devid": devid}
        if nic.model in ("netfront", "ioemu"):
            entry["nictype"] = "vif" if nic.model == "netfront" else "vif_ioemu"
        elif nic.model:
            entry["model"] = nic.model
        entry["mac"] = nic.mac
        if nic.ip:
            entry["ip"] = nic.ip
        entry["bridge"] = nic.bridge
        if nic.script:
            entry["script"] = nic.script
        nics.append(entry)
    exp["nics"] = nics or None
    exp["vnc"] = exp["keymap"] = exp["spice"] = None
    graphics = case.graphics or {}
    if graphics.get("TYPE", "").upper() == "VNC":
        vnc: dict[str, Any] = {"enable": "True"}
        if "LISTEN" in graphics:
            vnc["listen"] = graphics["LISTEN"]
        if "PASSWD" in graphics:
            vnc["passwd"] = graphics["PASSWD"]
        if "PORT" in graphics:
            display = int(graphics["PORT"]) - 5900
            if display:
                vnc["display"] = display
            vnc["findunused"] = "False"
        exp["vnc"], exp["keymap"] = vnc, graphics.get("KEYMAP")
    elif graphics.get("TYPE") == "SPICE":
        spice: dict[str, Any] = {"enable": "True", "port": int(graphics["PORT"])}
        if "LISTEN" in graphics:
            spice["host"] = graphics["LISTEN"]
        if "PASSWD" in graphics:
            spice["passwd"] = graphics["PASSWD"]
        else:
            spice["disable_ticketing"] = "True"
        exp["spice"] = spice
    exp["usb"] = "True" if case.tablet and case.dtype == "hvm" else None
    exp["usbdevice"] = "tablet" if exp["usb"] else None
    exp["pae"] = exp["acpi"] = exp["apic"] = exp["localtime"] = exp["device_model"] = exp["boot"] = None
    if case.dtype == "hvm":
        exp["pae"] = _yes(case.features.get("PAE"))
        exp["acpi"] = _yes(case.features.get("ACPI"))
        exp["apic"] = _yes(case.features.get("APIC"))
        exp["localtime"] = "True" if _yes(case.features.get("LOCALTIME")) == "True" else None
        exp["device_model"] = case.features.get("DEVICE_MODEL")
        letters = ""
        for token in case.boot:
            if token in OLD_BOOT:
                letter = OLD_BOOT[token]
            elif token.startswith("disk"):
                letter = "d" if cdrom_by_id[int(token[4:])] else "c"
            else:
                letter = "n"
            if letter not in letters:
                letters += letter
        exp["boot"] = letters or None
    return exp


def actual_json(doc: dict[str, Any], dtype: str) -> dict[str, Any]:
    """The same keys as `expected_json`, read from xl's JSON."""
    b_info = doc["b_info"]
    hvm = b_info.get("type.hvm", {})
    got: dict[str, Any] = {"type": doc["c_info"]["type"], "name": doc["c_info"]["name"]}
    for key in ("target_memkb", "max_memkb", "max_vcpus", "avail_vcpus", "kernel", "ramdisk", "cmdline"):
        got[key] = b_info.get(key)
    got["bootloader"] = b_info.get("bootloader")
    got["weight"] = b_info["sched_params"].get("weight")
    got["disks"], got["nics"] = doc.get("disks"), doc.get("nics")
    if dtype == "hvm":
        got["vnc"] = hvm.get("vnc") or None
        got["keymap"] = hvm.get("keymap")
    else:
        vfbs = doc.get("vfbs") or [{}]
        assert len(vfbs) == 1
        got["vnc"], got["keymap"] = vfbs[0].get("vnc"), vfbs[0].get("keymap")
    got["spice"] = hvm.get("spice") or None
    got["usb"], got["usbdevice"] = hvm.get("usb"), hvm.get("usbdevice")
    got["pae"], got["boot"] = hvm.get("pae"), hvm.get("boot")
    got["acpi"], got["apic"], got["localtime"] = (
        b_info.get("acpi"),
        b_info.get("apic"),
        b_info.get("localtime"),
    )
    got["device_model"] = b_info.get("device_model")
    return got
