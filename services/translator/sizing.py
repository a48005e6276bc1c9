"""MEMORY, VCPU and CPU → memory, vcpus and the credit-scheduler weight.

Bounds are checked here, with a sentence, because xl itself reads these with
strtol and silently drops a number it cannot read (a 20-digit MEMORY would give
a domain without its memory setting).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import NamedTuple

from services.translator.resolve import Findings, Resolver, Sourced
from services.translator.xlconfig import DomainType

__all__ = ["MAX_MEMORY_MIB", "MAX_VCPUS", "MAX_WEIGHT", "Sizing", "resolve_sizing"]

MAX_MEMORY_MIB = 16 * 1024 * 1024  # 16 TiB, what Xen 4.17 supports on x86
# HVM_MAX_VCPUS for HVM and PVH (both are HVM containers); MAX_VIRT_CPUS for PV.
MAX_VCPUS: dict[DomainType, int] = {"hvm": 128, "pvh": 128, "pv": 8192}
MAX_WEIGHT = 65535  # credit and credit2 schedulers: 1..65535
DEFAULT_CREDIT = 256  # one OpenNebula CPU
_INT = re.compile(r"\s*\+?([0-9]{1,19})\s*\Z")
_DECIMAL = re.compile(r"\+?([0-9]{1,12})(?:\.([0-9]{0,12}))?\Z")


class Sizing(NamedTuple):
    memory: int
    maxmem: int | None
    vcpus: int | None
    maxvcpus: int | None
    cpu_weight: int


def _integer(item: Sourced, what: str, low: int, high: int, findings: Findings) -> int | None:
    match = _INT.match(item.value)
    number = int(match.group(1)) if match else None
    if number is None or not low <= number <= high:
        findings.refuse(item.path, f"{what} {item.value!r} must be a whole number from {low} to {high}")
        return None
    return number


def _ratio(item: Sourced, what: str, findings: Findings) -> tuple[int, int] | None:
    """A positive number as an exact fraction (numerator, denominator)."""
    text = item.value.strip()
    match = _DECIMAL.match(text)
    ratio: tuple[int, int] | None = None
    if match:
        whole, fraction = match.group(1), match.group(2) or ""
        ratio = (int(whole + fraction), 10 ** len(fraction))
    else:
        # Other spellings Decimal knows (1e2, .5); infinities and NaN stay refused.
        try:
            number = Decimal(text)
        except InvalidOperation:
            number = Decimal("NaN")
        if number.is_finite():
            # Beyond 10**9 the weight is out of range anyway: do not build a huge integer.
            ratio = (10**10, 1) if number.adjusted() > 9 else number.as_integer_ratio()
    if ratio is None or ratio[0] <= 0:
        findings.refuse(item.path, f"{what} {item.value!r} must be a number above 0 (e.g. 0.5, 2)")
        return None
    return ratio


def _weight(cpu: Sourced | None, credit: Sourced | None, findings: Findings) -> int:
    cpu_ratio = _ratio(cpu, "CPU", findings) if cpu else (1, 1)
    credit_ratio = _ratio(credit, "CREDIT", findings) if credit else (DEFAULT_CREDIT, 1)
    if cpu_ratio is None or credit_ratio is None:
        return 0
    # Exact fractions, not floats: CPU=1.1 with CREDIT=100 is 110 credits, not ceil(110.00000000000001).
    numerator = cpu_ratio[0] * credit_ratio[0]
    denominator = cpu_ratio[1] * credit_ratio[1]
    weight = -(-numerator // denominator)
    if 1 <= weight <= MAX_WEIGHT:
        return weight
    blame = cpu or credit
    assert blame is not None  # the defaults alone always give 256
    shown = f"{weight}" if weight < 10**9 else "more than a billion"
    cpu_text = cpu.value.strip() if cpu else "1"
    credit_text = credit.value.strip() if credit else str(DEFAULT_CREDIT)
    findings.refuse(
        blame.path,
        f"CPU {cpu_text} x CREDIT {credit_text} gives a credit-scheduler weight of {shown}, "
        f"outside 1..{MAX_WEIGHT}: change CPU (or CREDIT in the driver defaults)",
    )
    return 0


def resolve_sizing(resolver: Resolver, dtype: DomainType, findings: Findings) -> Sizing:
    memory_item = resolver.single("MEMORY", from_defaults=False)
    memory = None
    if memory_item is None:
        findings.refuse("TEMPLATE/MEMORY", "the VM has no MEMORY: set it in MiB, e.g. MEMORY = 1024")
    else:
        memory = _integer(memory_item, "MEMORY (MiB)", 1, MAX_MEMORY_MIB, findings)
    maxmem = None
    maxmem_item = resolver.single("MEMORY_MAX", from_defaults=False)
    if maxmem_item is not None:
        maxmem = _integer(maxmem_item, "MEMORY_MAX (MiB)", 1, MAX_MEMORY_MIB, findings)
        if maxmem is not None and memory is not None and maxmem < memory:
            findings.refuse(maxmem_item.path, f"MEMORY_MAX {maxmem} is below MEMORY {memory}")

    limit = MAX_VCPUS[dtype]
    vcpus_item = resolver.single("VCPU")
    vcpus = _integer(vcpus_item, "VCPU", 1, limit, findings) if vcpus_item else None
    maxvcpus = None
    maxvcpus_item = resolver.single("VCPU_MAX", from_defaults=False)
    if maxvcpus_item is not None:
        maxvcpus = _integer(maxvcpus_item, "VCPU_MAX", 1, limit, findings)
        if vcpus_item is None:
            # Without vcpus xl would bring every one of maxvcpus online; OpenNebula's VCPU defaults to 1.
            vcpus = 1
        if maxvcpus is not None and vcpus is not None and maxvcpus < vcpus:
            findings.refuse(maxvcpus_item.path, f"VCPU_MAX {maxvcpus} is below VCPU {vcpus}")

    weight = _weight(
        resolver.single("CPU", from_defaults=False), resolver.single("CREDIT", from_template=False), findings
    )
    return Sizing(memory or 0, maxmem, vcpus, maxvcpus, weight)
