"""Checks on every request value that ends up on a Xen host's command line. Pure.

Each function returns the value in the form the command builders use (a MAC in lower case,
a path normalised) or raises `InvalidArgument` naming the request field. The rules are
allow-lists: what is accepted is what xl and OpenNebula produce, not "anything that is not
known to be dangerous". Shell quoting (commands.py) is a second, independent line of defence.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from collections.abc import Iterable

from onexen.runtime.errors import InvalidArgument

DOMAIN0 = "Domain-0"
MAX_CONFIG_BYTES = 1 << 20
MAX_DRIVER_MESSAGE_BYTES = 4 << 20

# xl accepts almost any name, but a name starting with "-" is an option, a number is a domid
# (xl acts on domain 0 for "0") and blanks or quotes only make trouble in logs and scripts.
_DOMAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+:@-]{0,63}")
_HOST_NAME = re.compile(r"[A-Za-z0-9_\[][A-Za-z0-9_.:\[\]-]{0,252}")
_MAC = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}")
# libxl's vdev names (libxl__device_disk_dev_number): xvd*, hd*, sd*, optionally a partition.
_VDEV = re.compile(r"(?:xvd|hd|sd)[a-z]{1,3}(?:[1-9][0-9]{0,2})?")
# Linux interface names: at most 15 bytes, and nothing xl's `key=value` words would split on.
_IFNAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}")
_NIC_MODEL = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}")
_SCRIPT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
_VIF_SCRIPTS_DIR = "/etc/xen/scripts"
# Disk prefixes as xenrc's DEFAULT_FILE_PREFIX / DISK DRIVER give them: raw, phy, file,
# tap:aio, tap2:tapdisk:aio, qcow2 ... (one trailing ":" is dropped, as upstream does).
_DISK_PREFIX = re.compile(r"[a-z0-9]+(?::[a-z0-9]+){0,3}")
_VNM_DRIVER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")
# Characters that must never reach a path on a command line: xl splits disk specs on ","
# and prefixes on ":", "=" marks key=value words, and controls break logs and protocols.
_PATH_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f,:=\\'\"`$;&|<>*?\[\]{}()!#~ ]")
_CONFIG_NAME_LINE = re.compile(
    r"""^[ \t]*name[ \t]*=[ \t]*(?:"([^"\n]*)"|'([^'\n]*)')[ \t]*(?:#.*)?$""", re.M
)


def refuse(field: str, description: str) -> InvalidArgument:
    return InvalidArgument.for_field(field, description)


def host_name(value: str, field: str = "host") -> str:
    if not value.strip():
        raise refuse(field, f"{field} is empty: name a Xen host as the executor's inventory knows it")
    if not _HOST_NAME.fullmatch(value):
        raise refuse(field, f"{field} {value!r} is not a host name (letters, digits, '.', '-', '_', ':')")
    return value


def domain_name(value: str, field: str = "domain", *, allow_domain0: bool = False) -> str:
    if not value:
        raise refuse(field, f"{field} is empty: give the domain's name (OpenNebula's DEPLOY_ID)")
    if not _DOMAIN_NAME.fullmatch(value):
        raise refuse(
            field,
            f"{field} {value!r} is not an acceptable domain name: 1-64 letters, digits and _.+:@-,"
            " not starting with '-' or '.'",
        )
    if value.isdigit():
        raise refuse(field, f"{field} {value!r} is a number: xl would take it as a domain id, give a name")
    if value == DOMAIN0 and not allow_domain0:
        raise refuse(field, f"{field} is {DOMAIN0}: the executor never acts on the host's control domain")
    return value


def mac(value: str, field: str = "mac") -> str:
    if not _MAC.fullmatch(value):
        raise refuse(field, f"{field} {value!r} is not a MAC address (six hex pairs joined by ':')")
    return value.lower()


def vdev(value: str, field: str = "target") -> str:
    if not _VDEV.fullmatch(value):
        raise refuse(field, f"{field} {value!r} is not a virtual disk name such as xvdb, hdc or sda")
    return value


def interface_name(value: str, field: str) -> str:
    if not _IFNAME.fullmatch(value):
        raise refuse(field, f"{field} {value!r} is not a network interface name (1-15 letters, digits, _.-)")
    return value


def nic_model(value: str, field: str = "model") -> str:
    if not _NIC_MODEL.fullmatch(value):
        raise refuse(field, f"{field} {value!r} is not a NIC model name such as e1000")
    return value


def ip_address(value: str, field: str = "ip") -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise refuse(field, f"{field} {value!r} is not an IP address") from None


def vif_script(value: str, field: str = "script") -> str:
    """A hotplug script: a name xl looks up in /etc/xen/scripts, or a path inside it."""
    if _SCRIPT_NAME.fullmatch(value):
        return value
    if value.startswith("/"):
        path = _clean_path(value, field)
        if posixpath.dirname(path) == _VIF_SCRIPTS_DIR and _SCRIPT_NAME.fullmatch(posixpath.basename(path)):
            return path
    raise refuse(field, f"{field} {value!r} is not a script name or a script in {_VIF_SCRIPTS_DIR}")


def disk_prefix(value: str, field: str = "driver") -> str:
    prefix = value[:-1] if value.endswith(":") else value
    if not _DISK_PREFIX.fullmatch(prefix):
        raise refuse(field, f"{field} {value!r} is not a disk prefix such as raw, phy or tap2:tapdisk:aio")
    return prefix


def credit_weight(value: int, field: str = "weight") -> int:
    if not 1 <= value <= 65535:
        raise refuse(field, f"{field} {value} is out of range: the credit scheduler takes 1..65535")
    return value


def credit_cap(value: int, field: str = "cap") -> int:
    # The cap is a percentage of one CPU: 100 per CPU the host could ever have.
    if not 0 <= value <= 100 * 4096:
        raise refuse(field, f"{field} {value} is out of range: 0 (no cap) or a percentage of one CPU")
    return value


def vnm_driver(value: str, field: str = "driver") -> str:
    if not _VNM_DRIVER.fullmatch(value) or value.strip(".") == "":
        raise refuse(
            field, f"{field} {value!r} is not a network driver name (letters, digits, '.', '_', '-')"
        )
    return value


def _clean_path(value: str, field: str) -> str:
    if not value.startswith("/"):
        raise refuse(field, f"{field} {value!r} is not an absolute path")
    bad = _PATH_FORBIDDEN.search(value)
    if bad:
        raise refuse(field, f"{field} contains {bad.group()!r}, which a path on a Xen host may not hold")
    parts = value.split("/")
    if any(part in (".", "..") for part in parts):
        raise refuse(field, f"{field} {value!r} has a '.' or '..' component")
    return posixpath.normpath(value)


def path_under(value: str, roots: Iterable[str], field: str, *, allow_root: bool = False) -> str:
    """An absolute path inside one of the datastore roots (strictly, unless `allow_root`), normalised."""
    if not value:
        raise refuse(field, f"{field} is empty")
    path = _clean_path(value, field)
    roots = tuple(roots)
    for root in roots:
        root = posixpath.normpath(root)
        if (allow_root or path != root) and posixpath.commonpath([path, root]) == root:
            return path
    raise refuse(field, f"{field} {value!r} is outside the datastore roots ({', '.join(roots)})")


def config_domain_name(config: str, field: str = "config") -> str:
    """The domain a deployment file creates: its `name = "..."` line (upstream's rule)."""
    if not config.strip():
        raise refuse(field, f"{field} is empty: give the xl domain config to create")
    if len(config.encode()) > MAX_CONFIG_BYTES:
        raise refuse(field, f"{field} is larger than {MAX_CONFIG_BYTES} bytes")
    if "\x00" in config:
        raise refuse(field, f"{field} contains a NUL character")
    names = [a or b for a, b in _CONFIG_NAME_LINE.findall(config)]
    if len(names) != 1:
        raise refuse(
            field,
            f'{field} must have exactly one name = "..." line (found {len(names)}): it names the domain',
        )
    return domain_name(names[0], field)
