"""NIC vectors → xl vif specs: MAC, BRIDGE, IP (for the anti-spoofing scripts), MODEL, SCRIPT.

xl splits a vif spec on every comma and has no escape for one, so every field
is checked here and a value xl would cut is refused. MODEL is the emulated
card (e1000, rtl8139, ...), from the NIC or else the driver defaults; the Xen
guide's vif types `netfront`/`vif` and `ioemu` become xl's `type=`, not a model.
NIC TARGET is not written as vifname: the host's network scripts find the tap as
vif<domid>.<index>.
"""

from __future__ import annotations

import functools
import re
from typing import Literal

from onexen.template import Vector
from services.translator.resolve import IPV4, Findings, Resolver, Sourced
from services.translator.xlconfig import VifSpec, spec_field_problem

__all__ = ["nic_ids", "plan_vifs"]

_MAC = re.compile(r"[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}\Z")
# Linux interface names: at most 15 bytes, no '/', no blanks.
_IFNAME = re.compile(r"[A-Za-z0-9_.:@+-]{1,15}\Z")
_MODEL = re.compile(r"[A-Za-z0-9_.-]+\Z")
_VIF_TYPES: dict[str, Literal["vif", "ioemu"]] = {"netfront": "vif", "vif": "vif", "ioemu": "ioemu"}
# Bounded: an id is a 32-bit number in oned, and int() refuses very long digit strings.
_DIGITS = re.compile(r"\s*([0-9]{1,10})\s*\Z")


def nic_ids(nics: list[Vector]) -> set[int]:
    """NIC_IDs as oned numbers them (the position when a NIC has none), for OS/BOOT nicN."""
    ids = set()
    for position, nic in enumerate(nics):
        match = _DIGITS.match(nic.get_exact("NIC_ID") or "")
        ids.add(int(match.group(1)) if match else position)
    return ids


_RULES: dict[str, tuple[re.Pattern[str], str]] = {
    "MAC": (_MAC, "six hex pairs, e.g. 02:00:c0:a8:01:0a"),
    "BRIDGE": (_IFNAME, "a Linux interface name, 1-15 characters"),
    "IP": (IPV4, "an IPv4 address, e.g. 192.168.1.10"),
    "MODEL": (_MODEL, "a NIC model such as e1000, rtl8139 or virtio-net"),
}


@functools.lru_cache(maxsize=4096)
def _validate(key: str, raw: str) -> tuple[str, str | None]:
    """(the value to write, why it cannot be written) for one NIC field; pure, so cached:
    the same bridges, models and scripts come back in every VM."""
    value = raw.strip()
    problem = spec_field_problem(value)
    rule = _RULES.get(key)
    if problem is None and rule is not None and not rule[0].match(value):
        problem = f"is not {rule[1]}"
    if problem is None and key == "MAC" and not value.strip("0:"):
        # libxl reads an all-zero MAC as "not given" and makes up a random one.
        problem = "is no address: xl would give the NIC a random MAC"
    return value, problem


def _field(item: Sourced | None, key: str, findings: Findings) -> str | None:
    if item is None:
        return None
    value, problem = _validate(key, item.value)
    if problem:
        findings.refuse(item.path, f"{item.value!r} {problem}")
        return None
    return value


def plan_vifs(resolver: Resolver, findings: Findings) -> tuple[VifSpec, ...]:
    vifs = []
    for number, nic in enumerate(resolver.template.vectors("NIC"), start=1):
        path = f"TEMPLATE/NIC[{number}]"
        model = _field(
            Resolver.own(nic, path, "MODEL") or resolver.default_sub("NIC", "MODEL"), "MODEL", findings
        )
        vif_type = _VIF_TYPES.get(model.lower()) if model else None
        vifs.append(
            VifSpec(
                mac=_field(Resolver.own(nic, path, "MAC"), "MAC", findings),
                bridge=_field(Resolver.own(nic, path, "BRIDGE"), "BRIDGE", findings),
                ip=_field(Resolver.own(nic, path, "IP"), "IP", findings),
                model=None if vif_type else model,
                type=vif_type,
                script=_field(Resolver.own(nic, path, "SCRIPT"), "SCRIPT", findings),
            )
        )
    return tuple(vifs)
