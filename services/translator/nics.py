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
from typing import Literal, NamedTuple

from onexen.template import Vector
from services.translator.resolve import DEFAULTS, IPV4, Findings, Resolver, small_number
from services.translator.xlconfig import VifSpec, spec_field_problem

__all__ = ["nic_ids", "plan_vifs"]

_MAC = re.compile(r"[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}\Z")
# Linux interface names: at most 15 bytes, no '/', no blanks.
_IFNAME = re.compile(r"[A-Za-z0-9_.:@+-]{1,15}\Z")
_MODEL = re.compile(r"[A-Za-z0-9_.-]+\Z")
_VIF_TYPES: dict[str, Literal["vif", "ioemu"]] = {"netfront": "vif", "vif": "vif", "ioemu": "ioemu"}


def nic_ids(nics: list[Vector]) -> set[int]:
    """NIC_IDs as oned numbers them (the position when a NIC has none), for OS/BOOT nicN."""
    ids = set()
    for position, nic in enumerate(nics):
        text = nic.get_exact("NIC_ID")
        number = small_number(text) if text else None
        ids.add(position if number is None else number)
    return ids


_RULES: dict[str, tuple[re.Pattern[str], str]] = {
    "MAC": (_MAC, "six hex pairs, e.g. 02:00:c0:a8:01:0a"),
    "BRIDGE": (_IFNAME, "a Linux interface name, 1-15 characters"),
    "IP": (IPV4, "an IPv4 address, e.g. 192.168.1.10"),
    "MODEL": (_MODEL, "a NIC model such as e1000, rtl8139 or virtio-net"),
}


def _problem(key: str, value: str) -> str | None:
    """Why `value` (stripped) cannot be the NIC field `key`, or None."""
    problem = spec_field_problem(value)
    rule = _RULES.get(key)
    if problem is None and rule is not None and not rule[0].match(value):
        problem = f"is not {rule[1]}"
    if problem is None and key == "MAC" and not value.strip("0:"):
        # libxl reads an all-zero MAC as "not given" and makes up a random one.
        problem = "is no address: xl would give the NIC a random MAC"
    return problem


def _validate(key: str, raw: str) -> tuple[str, str | None]:
    """(the value to write, why it cannot be written: "'<raw>' <problem>") for one NIC field."""
    value = raw.strip()
    problem = _problem(key, value)
    return value, (f"{raw!r} {problem}" if problem else None)


class _Kind(NamedTuple):
    """A NIC's MODEL, BRIDGE and SCRIPT as xl takes them, and what is wrong with them."""

    model: str | None
    vif_type: Literal["vif", "ioemu"] | None
    model_problem: str | None
    bridge: str | None
    bridge_problem: str | None
    script: str | None
    script_problem: str | None


@functools.lru_cache(maxsize=1024)
def _kind(model: str | None, bridge: str | None, script: str | None) -> _Kind:
    """The NIC fields whose values repeat from VM to VM; pure, so cached."""
    model_value = model_problem = bridge_value = bridge_problem = script_value = script_problem = None
    if model:
        model_value, model_problem = _validate("MODEL", model)
    if bridge:
        bridge_value, bridge_problem = _validate("BRIDGE", bridge)
    if script:
        script_value, script_problem = _validate("SCRIPT", script)
    if model_problem:
        model_value = None
    vif_type = _VIF_TYPES.get(model_value.lower()) if model_value else None
    return _Kind(
        None if vif_type else model_value,
        vif_type,
        model_problem,
        None if bridge_problem else bridge_value,
        bridge_problem,
        None if script_problem else script_value,
        script_problem,
    )


def _address(raw: str | None, key: str, number: int, findings: Findings) -> str | None:
    """MAC or IP of NIC `number`: each VM's own, so checked every time (not cached). The
    rule's pattern alone accepts only values with no comma, blank or control character."""
    if not raw:
        return None
    value = raw.strip()
    if _RULES[key][0].match(value) and (key != "MAC" or value.strip("0:")):
        return value
    findings.refuse(f"{_nic_path(number)}/{key}", f"{raw!r} {_problem(key, value)}")
    return None


def _nic_path(number: int) -> str:
    return f"TEMPLATE/NIC[{number}]"


def plan_vifs(resolver: Resolver, findings: Findings) -> tuple[VifSpec, ...]:
    vifs = []
    default_nic = resolver.defaults.vector_exact("NIC")
    default_model = default_nic.get_exact("MODEL") if default_nic is not None else None
    for number, nic in enumerate(resolver.template.vectors("NIC"), start=1):
        get = nic.get_exact
        own_model = get("MODEL")
        kind = _kind(own_model or default_model, get("BRIDGE"), get("SCRIPT"))
        if kind.model_problem:
            path = f"{_nic_path(number)}/MODEL" if own_model else f"{DEFAULTS}/NIC/MODEL"
            findings.refuse(path, kind.model_problem)
        mac = _address(get("MAC"), "MAC", number, findings)
        if kind.bridge_problem:
            findings.refuse(f"{_nic_path(number)}/BRIDGE", kind.bridge_problem)
        ip = _address(get("IP"), "IP", number, findings)
        if kind.script_problem:
            findings.refuse(f"{_nic_path(number)}/SCRIPT", kind.script_problem)
        vifs.append(
            # Positional (a call with keywords costs twice as much): mac, bridge, ip, model, type, script.
            VifSpec(mac, kind.bridge, ip, kind.model, kind.vif_type, kind.script)
        )
    return tuple(vifs)
