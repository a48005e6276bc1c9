"""`xl list -l` JSON of one domain → an OpenNebula template that imports it (a wild VM).

The template carries what the translator needs to give the same domain back:
memory (target, and MEMORY_MAX when the maximum is higher), vcpus (online, and
VCPU_MAX), every disk (SOURCE = its current path, TARGET, DRIVER, READONLY,
TYPE = CDROM), every NIC (MAC, BRIDGE, IP, MODEL, SCRIPT), the VNC or SPICE console,
the OS (MACHINE = the xl type, KERNEL, INITRD, KERNEL_CMD, BOOTLOADER, BOOT as
diskN/nicN) and the import keys: DEPLOY_ID (read by oned 5.12+) and IMPORT_VM_ID
(4.x - 5.10), both the domain name. CPU is the vcpu count, as upstream's poll.
"""

from __future__ import annotations

import json
import re
from typing import Any

from onexen.template import Template, Value, Vector, dumps
from services.translator.errors import TranslationError
from services.translator.graphics import VNC_BASE_PORT

__all__ = ["import_template"]

FIELD = "domain_json"
_ONE_VM = re.compile(r"one-[0-9]+\Z")
_BOOT_DEVICE = {"c": "hd", "d": "cdrom", "n": "network", "a": "fd"}


def _config(domain_json: str) -> dict[str, Any]:
    try:
        data = json.loads(domain_json)
    except ValueError as exc:
        raise TranslationError.for_field(FIELD, f"is not JSON: {exc}") from None
    except RecursionError:
        raise TranslationError.for_field(FIELD, "is nested too deeply to be `xl list -l` output") from None
    if isinstance(data, list):
        if len(data) != 1:
            raise TranslationError.for_field(
                FIELD,
                f"holds {len(data)} domains: pass one (`xl list -l <name>`, or one element of the array)",
            )
        data = data[0]
    if isinstance(data, dict) and isinstance(data.get("config"), dict):
        data = data["config"]
    if not isinstance(data, dict) or not isinstance(data.get("c_info"), dict):
        raise TranslationError.for_field(FIELD, "is not a domain from `xl list -l` (no config.c_info)")
    return data


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _true(value: Any) -> bool:
    # libxl's JSON writes defbools as "True"/"False" and flags as 1/0.
    return value in ("True", True, 1)


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _vector(**items: str | int | None) -> Vector:
    return Vector((key, str(value)) for key, value in items.items() if value is not None)


def _mib(kib: int) -> int:
    return -(-kib // 1024)  # integer ceiling: a float would overflow on absurd JSON


def _boot(letters: str, disks: list[dict[str, Any]], nics: list[dict[str, Any]]) -> str:
    tokens = []
    for letter in letters:
        if letter in "cd":
            want_cdrom = letter == "d"
            index = next((i for i, d in enumerate(disks) if _true(d.get("is_cdrom")) == want_cdrom), None)
            tokens.append(f"disk{index}" if index is not None else _BOOT_DEVICE[letter])
        elif letter == "n":
            tokens.append("nic0" if nics else "network")
        elif letter in _BOOT_DEVICE:
            tokens.append(_BOOT_DEVICE[letter])
    return ",".join(tokens)


def _graphics(dtype: str, b_info: dict[str, Any], vfbs: list[dict[str, Any]]) -> Vector | None:
    hvm = _dict(b_info.get("type.hvm"))
    spice = _dict(hvm.get("spice"))
    if dtype == "hvm" and _true(spice.get("enable")):
        return _vector(
            TYPE="SPICE",
            LISTEN=_text(spice.get("host")),
            PORT=_positive_int(spice.get("port")),
            PASSWD=_text(spice.get("passwd")),
        )
    if dtype == "hvm":
        vnc, keymap = _dict(hvm.get("vnc")), hvm.get("keymap")
    else:
        first = vfbs[0] if vfbs else {}
        vnc, keymap = _dict(first.get("vnc")), first.get("keymap")
        if first and "enable" not in vnc:
            vnc = {**vnc, "enable": "True"}  # a vfb is VNC unless it says otherwise
    if not _true(vnc.get("enable")):
        return None
    display = vnc.get("display")
    if not isinstance(display, int) and vnc.get("findunused") == "False":
        display = 0  # libxl leaves out a display of 0
    port = VNC_BASE_PORT + display if isinstance(display, int) and display >= 0 else None
    return _vector(
        TYPE="VNC",
        LISTEN=_text(vnc.get("listen")),
        PORT=port,
        PASSWD=_text(vnc.get("passwd")),
        KEYMAP=_text(keymap),
    )


def import_template(domain_json: str) -> tuple[str, str, list[str]]:
    """(template text, domain name, warnings); raises `TranslationError` for bad JSON."""
    config = _config(domain_json)
    c_info, b_info = config["c_info"], _dict(config.get("b_info"))
    name = c_info.get("name")
    if not isinstance(name, str) or not name:
        raise TranslationError.for_field(FIELD, "the domain has no name (config.c_info.name)")
    if name == "Domain-0":
        raise TranslationError.for_field(FIELD, "Domain-0 is the host's control domain, not a VM to import")
    if _ONE_VM.match(name):
        raise TranslationError.for_field(
            FIELD, f"{name} is an OpenNebula VM already (one-<ID>): only wild VMs import"
        )
    dtype = c_info.get("type") if c_info.get("type") in ("pv", "pvh", "hvm") else "pv"
    warnings: list[str] = []

    max_kib = _positive_int(b_info.get("max_memkb"))
    target_kib = _positive_int(b_info.get("target_memkb")) or max_kib
    max_vcpus = _positive_int(b_info.get("max_vcpus")) or 1
    online = b_info.get("avail_vcpus")
    vcpus = len(online) if isinstance(online, list) and online else max_vcpus
    items: list[tuple[str, Value]] = [("NAME", name), ("CPU", str(vcpus)), ("VCPU", str(vcpus))]
    if max_vcpus > vcpus:
        items.append(("VCPU_MAX", str(max_vcpus)))
    if target_kib is None:
        warnings.append("config.b_info: the domain reports no memory; MEMORY is left out")
    else:
        items.append(("MEMORY", str(_mib(target_kib))))
        if max_kib and _mib(max_kib) > _mib(target_kib):
            items.append(("MEMORY_MAX", str(_mib(max_kib))))

    disks, nics = _list(config.get("disks")), _list(config.get("nics"))
    hvm = _dict(b_info.get("type.hvm"))
    boot = _text(hvm.get("boot")) if dtype == "hvm" else None
    items.append(
        (
            "OS",
            _vector(
                MACHINE=dtype,
                KERNEL=_text(b_info.get("kernel")),
                INITRD=_text(b_info.get("ramdisk")),
                KERNEL_CMD=_text(b_info.get("cmdline")),
                BOOTLOADER=_text(b_info.get("bootloader")),
                BOOT=_boot(boot, disks, nics) if boot else None,
            ),
        )
    )
    for disk in disks:
        fmt = _text(disk.get("format")) or "raw"
        driver = "phy:" if disk.get("backend") == "phy" and fmt == "raw" else fmt
        items.append(
            (
                "DISK",
                _vector(
                    SOURCE=_text(disk.get("pdev_path")),
                    TARGET=_text(disk.get("vdev")),
                    DRIVER=driver,
                    READONLY="NO" if _true(disk.get("readwrite")) else "YES",
                    TYPE="CDROM" if _true(disk.get("is_cdrom")) else None,
                ),
            )
        )
    for nic in nics:
        model = _text(nic.get("model"))
        if model is None:
            model = {"vif": "netfront", "vif_ioemu": "ioemu"}.get(str(nic.get("nictype")))
        items.append(
            (
                "NIC",
                _vector(
                    MAC=_text(nic.get("mac")),
                    BRIDGE=_text(nic.get("bridge")),
                    IP=_text(nic.get("ip")),
                    MODEL=model,
                    SCRIPT=_text(nic.get("script")),
                ),
            )
        )
    graphics = _graphics(dtype, b_info, _list(config.get("vfbs")))
    if graphics is not None:
        items.append(("GRAPHICS", graphics))
    if _list(config.get("pcidevs")):
        warnings.append("config.pcidevs: PCI devices are not imported")
    items += [("DEPLOY_ID", name), ("IMPORT_VM_ID", name)]
    return dumps(Template(items)), name, warnings
