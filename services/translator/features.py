"""FEATURES → HVM platform switches (PV and PVH ignore them, as upstream).

PAE, ACPI, APIC: written as 1 or 0 when the template or the defaults set them.
LOCALTIME: only a true value is written. DEVICE_MODEL: xl 4.17 ignores the old
`device_model` key, so the path becomes `device_model_override` with
`device_model_version = "qemu-xen"` (the only device model Debian's Xen 4.17
ships; without a version xl warns). Booleans are true iff YES, in any case.
"""

from __future__ import annotations

from typing import NamedTuple

from services.translator.resolve import Findings, Resolver, control_problem, is_yes
from services.translator.xlconfig import DomainType

__all__ = ["Features", "resolve_features"]

DEVICE_MODEL_VERSION = "qemu-xen"


class Features(NamedTuple):
    pae: bool | None = None
    acpi: bool | None = None
    apic: bool | None = None
    localtime: bool = False
    device_model_override: str | None = None
    device_model_version: str | None = None


_NONE = Features()


def resolve_features(resolver: Resolver, dtype: DomainType, findings: Findings) -> Features:
    if dtype != "hvm":
        return _NONE

    features = resolver.subs("FEATURES")

    def flag(key: str) -> bool | None:
        item = features(key)
        return None if item is None else is_yes(item.value)

    device_model = features("DEVICE_MODEL")
    override = None
    if device_model is not None:
        problem = control_problem(device_model.value)
        if problem:
            findings.refuse(device_model.path, problem)
        else:
            override = device_model.value
    return Features(
        pae=flag("PAE"),
        acpi=flag("ACPI"),
        apic=flag("APIC"),
        localtime=bool(flag("LOCALTIME")),
        device_model_override=override,
        device_model_version=DEVICE_MODEL_VERSION if override else None,
    )
