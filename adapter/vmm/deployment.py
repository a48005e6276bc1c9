"""The deployment file oned writes before DEPLOY, and what to create from it. Pure.

With the VM_MAD's `TYPE = "xml"` the file holds the VM's XML (the translator renders the
xl config); with `TYPE = "xen"` oned's XenDriver already rendered an xl config, used as
it is (spec §0.3). `--type auto` tells them apart by the first character.

The translator needs DATASTORE_LOCATION to name disk files; 5.x and later oned no longer
put it in the VM's history, but REMOTE_DEPLOYMENT_FILE is `<location>/<ds>/<vm>/deployment.<n>`
on the host, so it is derived from there unless the defaults file sets it.
"""

from __future__ import annotations

import posixpath
import re
from typing import Literal

DeployType = Literal["auto", "xml", "xen"]
DEPLOY_TYPES: tuple[DeployType, ...] = ("auto", "xml", "xen")

_NAME_LINE = re.compile(r"""^[ \t]*name[ \t]*=[ \t]*(?:"([^"\n]*)"|'([^'\n]*)')""", re.M)
# oned's XenDriver writes the credit weight as a comment the stock deploy script reads.
_CREDITS_LINE = re.compile(r"^#O CPU_CREDITS[ \t]*=[ \t]*([0-9]{1,9})[ \t]*$", re.M)
_WEIGHT_LINE = re.compile(r"^[ \t]*cpu_weight[ \t]*=", re.M)
_LOCATION_KEY = re.compile(r"^[ \t]*DATASTORE_LOCATION[ \t]*=", re.M | re.I)
MAX_WEIGHT = 65535


def content_kind(content: str, declared: DeployType) -> Literal["xml", "xen"]:
    """What the deployment file holds: as declared, or by its first non-blank character."""
    if declared != "auto":
        return declared
    return "xml" if content.lstrip().startswith("<") else "xen"


def xl_domain_name(config: str) -> str:
    """The `name = "..."` of an xl config, "" when there is not exactly one."""
    names = [a or b for a, b in _NAME_LINE.findall(config)]
    return names[0].strip() if len(names) == 1 else ""


def sets_weight(config: str) -> bool:
    """Whether the config has its own `cpu_weight` (xl create applies it)."""
    return _WEIGHT_LINE.search(config) is not None


def xl_credit_weight(config: str) -> int:
    """The weight to set after create: XenDriver's `#O CPU_CREDITS`, unless xl sets one itself."""
    if sets_weight(config):
        return 0
    match = _CREDITS_LINE.search(config)
    return min(int(match.group(1)), MAX_WEIGHT) if match else 0


def datastore_location(remote_deployment_file: str, vm_id: int, ds_id: str) -> str | None:
    """`<location>` of `<location>/<ds_id>/<vm_id>/deployment.<n>`; None if the path is not so."""
    vm_dir = posixpath.dirname(remote_deployment_file)
    ds_dir = posixpath.dirname(vm_dir)
    location = posixpath.dirname(ds_dir)
    if posixpath.basename(vm_dir) != str(vm_id) or not posixpath.basename(ds_dir).isdigit():
        return None
    if ds_id and posixpath.basename(ds_dir) != ds_id:
        return None
    if not location.startswith("/") or any(c in location for c in '"\\\n'):
        return None
    return location


def defaults_for(defaults: str, location: str | None) -> str:
    """The defaults text given to the translator: the file, plus the derived location."""
    if location is None or _LOCATION_KEY.search(defaults):
        return defaults
    separator = "" if not defaults or defaults.endswith("\n") else "\n"
    return f'{defaults}{separator}DATASTORE_LOCATION = "{location}"\n'
