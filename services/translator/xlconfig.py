"""The xl domain config as objects, and their rendering to xl.cfg(5) text.

Policy (what OpenNebula's template means) lives in the other modules; this one
only knows how xl 4.17 reads text, and has one escaping rule per context:

* a setting's value is an xl string literal (`xl_string`): double quotes, with
  \\\\ \\" \\n \\r \\t \\a \\b \\f \\v escaped, so no value can end the string, start
  a new setting or a new list item. A NUL cannot be written (libxlu reads C strings).
* a disk is one string in the `key=value, ...` form with `target=` last: libxlu
  gives everything after `target=` to the path, commas included, up to a new
  line, and drops one trailing comma (`disk_target_problem`).
* vif and vfb specs are split on every comma by xl, with no way to escape one:
  a field value with a comma cannot be written (`spec_field_problem`).

Integers we computed ourselves are written bare. `render` raises
`UnrepresentableValue` for a value the policy should have refused already.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "DiskSpec",
    "DomainConfig",
    "DomainType",
    "SpiceSpec",
    "UnrepresentableValue",
    "VifSpec",
    "VncSpec",
    "disk_spec",
    "disk_target_problem",
    "render",
    "spec_field_problem",
    "vif_spec",
    "xl_string",
]

DomainType = Literal["pv", "pvh", "hvm"]


class UnrepresentableValue(ValueError):
    """A value that no xl syntax can carry intact (a policy gap if it reaches `render`)."""


@dataclass(slots=True)
class DiskSpec:
    target: str  # the backing file or device (xl's `target=`, libxl's pdev_path)
    vdev: str
    format: str = "raw"
    access: Literal["rw", "ro"] = "rw"
    devtype: Literal["disk", "cdrom"] = "disk"
    backendtype: str | None = None
    script: str | None = None


@dataclass(slots=True)
class VifSpec:
    mac: str | None = None
    bridge: str | None = None
    ip: str | None = None
    model: str | None = None
    type: Literal["vif", "ioemu"] | None = None
    script: str | None = None


@dataclass(slots=True)
class VncSpec:
    listen: str | None = None
    display: int | None = None  # None lets xl pick a free display
    passwd: str | None = None
    keymap: str | None = None


@dataclass(slots=True)
class SpiceSpec:
    port: int
    host: str | None = None
    passwd: str | None = None  # None disables ticketing


@dataclass(slots=True)
class DomainConfig:
    name: str
    type: DomainType
    memory: int  # MiB
    maxmem: int | None = None
    vcpus: int | None = None
    maxvcpus: int | None = None
    cpu_weight: int | None = None
    kernel: str | None = None
    ramdisk: str | None = None
    cmdline: str | None = None
    bootloader: str | None = None
    boot: str | None = None  # HVM boot letters
    disks: tuple[DiskSpec, ...] = ()
    vifs: tuple[VifSpec, ...] = ()
    vnc: VncSpec | None = None
    spice: SpiceSpec | None = None
    usb_tablet: bool = False
    pae: bool | None = None
    acpi: bool | None = None
    apic: bool | None = None
    localtime: bool = False
    device_model_override: str | None = None
    device_model_version: str | None = None
    raw: tuple[str, ...] = field(default=())  # verbatim xl text, appended last


_ESCAPES = {
    "\\": "\\\\",
    '"': '\\"',
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\v": "\\v",
}
_NEEDS_ESCAPE = re.compile(r'[\\"\n\r\t\a\b\f\v]')
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Values inside a spec that are keywords or names we chose: nothing xl could split on.
_SPEC_WORD = re.compile(r"[^\s,=\x00-\x1f\x7f]+\Z")


def xl_string(value: str) -> str:
    """`value` as an xl string literal that libxlu reads back unchanged."""
    if value.isprintable() and '"' not in value and "\\" not in value:
        return f'"{value}"'
    if "\x00" in value:
        raise UnrepresentableValue("a NUL character cannot be written in an xl config")
    if _NEEDS_ESCAPE.search(value):
        value = _NEEDS_ESCAPE.sub(lambda m: _ESCAPES[m.group()], value)
    return f'"{value}"'


def spec_field_problem(value: str) -> str | None:
    """Why `value` cannot be a field of a vif or vfb spec, or None when it can."""
    if not value:
        return "is empty"
    if "," in value:
        return "contains a comma, which xl reads as the end of the field (it has no escape for it)"
    if not value.isprintable() and _CONTROL.search(value):
        return "contains a control character (a new line, a tab, ...)"
    return None


def disk_target_problem(path: str) -> str | None:
    """Why `path` cannot follow `target=` in a disk spec, or None when it can."""
    if not path:
        return "is empty"
    if not path.isprintable() and _CONTROL.search(path):
        return "contains a control character (a new line, a tab, ...), which a disk spec cannot carry"
    if path.endswith(","):
        return "ends with a comma, which xl would drop"
    return None


@functools.lru_cache(maxsize=4096)
def _is_word(value: str) -> bool:
    # Formats and targets repeat in every config: their check is remembered.
    return _SPEC_WORD.match(value) is not None


def _word(value: str, what: str) -> str:
    if not _is_word(value):
        raise UnrepresentableValue(f"{what} {value!r} cannot be written in a device spec")
    return value


def _field(value: str, what: str) -> str:
    problem = spec_field_problem(value)
    if problem:
        raise UnrepresentableValue(f"{what} {value!r} {problem}")
    return value


def disk_spec(disk: DiskSpec) -> str:
    """The disk in xl-disk-configuration(5) key=value form, `target=` last."""
    problem = disk_target_problem(disk.target)
    if problem:
        raise UnrepresentableValue(f"disk path {disk.target!r} {problem}")
    parts = [
        f"format={_word(disk.format, 'format')}",
        f"vdev={_word(disk.vdev, 'vdev')}",
        f"access={disk.access}",
    ]
    if disk.devtype == "cdrom":
        parts.append("devtype=cdrom")
    if disk.backendtype:
        parts.append(f"backendtype={_word(disk.backendtype, 'backendtype')}")
    if disk.script:
        parts.append(f"script={_word(disk.script, 'script')}")
    parts.append(f"target={disk.target}")
    return ", ".join(parts)


def vif_spec(vif: VifSpec) -> str:
    parts = []
    for key in ("type", "model", "mac", "ip", "bridge", "script"):
        value = getattr(vif, key)
        if value is not None:
            parts.append(f"{key}={_field(value, key)}")
    return ", ".join(parts)


def _vfb_spec(vnc: VncSpec) -> str:
    parts = ["vnc=1"]
    if vnc.listen is not None:
        parts.append(f"vnclisten={_field(vnc.listen, 'vnclisten')}")
    if vnc.display is not None:
        parts += [f"vncdisplay={vnc.display}", "vncunused=0"]
    if vnc.passwd is not None:
        parts.append(f"vncpasswd={_field(vnc.passwd, 'vncpasswd')}")
    if vnc.keymap is not None:
        parts.append(f"keymap={_field(vnc.keymap, 'keymap')}")
    return ", ".join(parts)


def _list(name: str, items: list[str]) -> str:
    if not items:
        return f"{name} = []\n"
    return f"{name} = [\n" + "".join(f"    {xl_string(item)},\n" for item in items) + "]\n"


def _flag(value: bool) -> str:
    return "1" if value else "0"


def render(config: DomainConfig) -> str:
    """The config as xl.cfg text; every line ends with a new line."""
    out: list[str] = []
    add = out.append
    add(f"name = {xl_string(config.name)}\n")
    add(f'type = "{config.type}"\n')
    add(f"memory = {config.memory}\n")
    if config.maxmem is not None:
        add(f"maxmem = {config.maxmem}\n")
    if config.vcpus is not None:
        add(f"vcpus = {config.vcpus}\n")
    if config.maxvcpus is not None:
        add(f"maxvcpus = {config.maxvcpus}\n")
    if config.cpu_weight is not None:
        add(f"cpu_weight = {config.cpu_weight}\n")
    for key in ("kernel", "ramdisk", "cmdline", "bootloader", "boot"):
        value = getattr(config, key)
        if value is not None:
            add(f"{key} = {xl_string(value)}\n")
    add(_list("disk", [disk_spec(d) for d in config.disks]))
    add(_list("vif", [vif_spec(v) for v in config.vifs]))
    vnc = config.vnc
    if vnc is not None and config.type == "pvh":
        # xl reads the top-level vnc keys into the HVM part of the build info only,
        # which a PVH domain does not have: its framebuffer must be a vfb.
        add(_list("vfb", [_vfb_spec(vnc)]))
    elif vnc is not None:
        add("vnc = 1\n")
        if vnc.listen is not None:
            add(f"vnclisten = {xl_string(vnc.listen)}\n")
        if vnc.display is not None:
            add(f"vncdisplay = {vnc.display}\nvncunused = 0\n")
        if vnc.passwd is not None:
            add(f"vncpasswd = {xl_string(vnc.passwd)}\n")
        if vnc.keymap is not None:
            add(f"keymap = {xl_string(vnc.keymap)}\n")
    spice = config.spice
    if spice is not None:
        add("spice = 1\n")
        if spice.host is not None:
            add(f"spicehost = {xl_string(spice.host)}\n")
        add(f"spiceport = {spice.port}\n")
        if spice.passwd is not None:
            add(f"spicepasswd = {xl_string(spice.passwd)}\n")
        else:
            add("spicedisable_ticketing = 1\n")
    if config.usb_tablet:
        add('usb = 1\nusbdevice = "tablet"\n')
    for key in ("pae", "acpi", "apic"):
        flag = getattr(config, key)
        if flag is not None:
            add(f"{key} = {_flag(flag)}\n")
    if config.localtime:
        add("localtime = 1\n")
    if config.device_model_override is not None:
        add(f"device_model_override = {xl_string(config.device_model_override)}\n")
    if config.device_model_version is not None:
        add(f"device_model_version = {xl_string(config.device_model_version)}\n")
    for chunk in config.raw:
        add(chunk if chunk.endswith("\n") else chunk + "\n")
    return "".join(out)
