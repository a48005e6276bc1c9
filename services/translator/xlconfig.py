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
def _word(value: str, what: str) -> str:
    # Formats and targets repeat in every config: their check is remembered.
    if _SPEC_WORD.match(value) is None:
        raise UnrepresentableValue(f"{what} {value!r} cannot be written in a device spec")
    return value


def _field(value: str, what: str) -> str:
    if value and "," not in value and value.isprintable():
        return value  # the common answer of spec_field_problem, without the call
    problem = spec_field_problem(value)
    if problem:
        raise UnrepresentableValue(f"{what} {value!r} {problem}")
    return value


@functools.lru_cache(maxsize=1024)
def _disk_options(
    fmt: str, vdev: str, access: str, devtype: str, backendtype: str | None, script: str | None
) -> str:
    """A disk spec up to `target=`: what repeats from VM to VM, so cached."""
    spec = f"format={_word(fmt, 'format')}, vdev={_word(vdev, 'vdev')}, access={access}"
    if devtype == "cdrom":
        spec += ", devtype=cdrom"
    if backendtype:
        spec += f", backendtype={_word(backendtype, 'backendtype')}"
    if script:
        spec += f", script={_word(script, 'script')}"
    return spec


def disk_spec(disk: DiskSpec) -> str:
    """The disk in xl-disk-configuration(5) key=value form, `target=` last."""
    target = disk.target
    if not target or target[-1] == "," or not target.isprintable():
        problem = disk_target_problem(target)
        if problem:
            raise UnrepresentableValue(f"disk path {target!r} {problem}")
    options = _disk_options(disk.format, disk.vdev, disk.access, disk.devtype, disk.backendtype, disk.script)
    return f"{options}, target={target}"


# `_field` for the values that repeat from VM to VM (models, bridges, scripts): cached.
_repeated_field = functools.lru_cache(maxsize=1024)(_field)


def vif_spec(vif: VifSpec) -> str:
    parts = []
    # In this order: type, model, mac, ip, bridge, script.
    if vif.type is not None:
        parts.append(f"type={_repeated_field(vif.type, 'type')}")
    if vif.model is not None:
        parts.append(f"model={_repeated_field(vif.model, 'model')}")
    if vif.mac is not None:
        parts.append(f"mac={_field(vif.mac, 'mac')}")
    if vif.ip is not None:
        parts.append(f"ip={_field(vif.ip, 'ip')}")
    if vif.bridge is not None:
        parts.append(f"bridge={_repeated_field(vif.bridge, 'bridge')}")
    if vif.script is not None:
        parts.append(f"script={_repeated_field(vif.script, 'script')}")
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
    flat = "".join(items)
    if flat.isprintable() and '"' not in flat and "\\" not in flat:
        # No item needs an escape (xl_string's common case), checked for all at once.
        return f'{name} = [\n    "' + '",\n    "'.join(items) + '",\n]\n'
    return f"{name} = [\n" + "".join([f"    {xl_string(item)},\n" for item in items]) + "]\n"


def _flag(value: bool) -> str:
    return "1" if value else "0"


# `xl_string` for the values that repeat from VM to VM (kernels, command lines, listen
# addresses...): cached. A VM's own values (its name, a password) are not.
_repeated_string = functools.lru_cache(maxsize=1024)(xl_string)


def render(config: DomainConfig) -> str:
    """The config as xl.cfg text; every line ends with a new line."""
    out = [f'name = {xl_string(config.name)}\ntype = "{config.type}"\nmemory = {config.memory}\n']
    add = out.append
    if config.maxmem is not None:
        add(f"maxmem = {config.maxmem}\n")
    if config.vcpus is not None:
        add(f"vcpus = {config.vcpus}\n")
    if config.maxvcpus is not None:
        add(f"maxvcpus = {config.maxvcpus}\n")
    if config.cpu_weight is not None:
        add(f"cpu_weight = {config.cpu_weight}\n")
    if config.kernel is not None:
        add(f"kernel = {_repeated_string(config.kernel)}\n")
    if config.ramdisk is not None:
        add(f"ramdisk = {_repeated_string(config.ramdisk)}\n")
    if config.cmdline is not None:
        add(f"cmdline = {_repeated_string(config.cmdline)}\n")
    if config.bootloader is not None:
        add(f"bootloader = {_repeated_string(config.bootloader)}\n")
    if config.boot is not None:
        add(f"boot = {_repeated_string(config.boot)}\n")
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
            add(f"vnclisten = {_repeated_string(vnc.listen)}\n")
        if vnc.display is not None:
            add(f"vncdisplay = {vnc.display}\nvncunused = 0\n")
        if vnc.passwd is not None:
            add(f"vncpasswd = {xl_string(vnc.passwd)}\n")
        if vnc.keymap is not None:
            add(f"keymap = {_repeated_string(vnc.keymap)}\n")
    spice = config.spice
    if spice is not None:
        add("spice = 1\n")
        if spice.host is not None:
            add(f"spicehost = {_repeated_string(spice.host)}\n")
        add(f"spiceport = {spice.port}\n")
        if spice.passwd is not None:
            add(f"spicepasswd = {xl_string(spice.passwd)}\n")
        else:
            add("spicedisable_ticketing = 1\n")
    if config.usb_tablet:
        add('usb = 1\nusbdevice = "tablet"\n')
    if config.pae is not None:
        add(f"pae = {_flag(config.pae)}\n")
    if config.acpi is not None:
        add(f"acpi = {_flag(config.acpi)}\n")
    if config.apic is not None:
        add(f"apic = {_flag(config.apic)}\n")
    if config.localtime:
        add("localtime = 1\n")
    if config.device_model_override is not None:
        add(f"device_model_override = {_repeated_string(config.device_model_override)}\n")
    if config.device_model_version is not None:
        add(f"device_model_version = {_repeated_string(config.device_model_version)}\n")
    for chunk in config.raw:
        add(chunk if chunk.endswith("\n") else chunk + "\n")
    return "".join(out)
