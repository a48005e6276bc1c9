"""MEMORY, VCPU and CPU → memory, vcpus and the credit-scheduler weight.

Bounds are checked here, with a sentence, because xl itself reads these with
strtol and silently drops a number it cannot read (a 20-digit MEMORY would give
a domain without its memory setting).
"""

from __future__ import annotations

import functools
import re
from decimal import Decimal, InvalidOperation
from typing import NamedTuple

from services.translator.resolve import DEFAULTS, Findings, Resolver
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


# (the path of the refused value, None for VCPU's; the sentence)
_Refusal = tuple[str | None, str]
_VCPU = None  # VCPU comes from the template or the defaults: its path is found on refusal
_CPU_PATH = "TEMPLATE/CPU"
_CREDIT_PATH = f"{DEFAULTS}/CREDIT"


def _integer(
    value: str, path: str | None, what: str, low: int, high: int, refused: list[_Refusal]
) -> int | None:
    match = _INT.match(value)
    number = int(match.group(1)) if match else None
    if number is None or not low <= number <= high:
        refused.append((path, f"{what} {value!r} must be a whole number from {low} to {high}"))
        return None
    return number


def _ratio(value: str, path: str, what: str, refused: list[_Refusal]) -> tuple[int, int] | None:
    """A positive number as an exact fraction (numerator, denominator)."""
    text = value.strip()
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
        refused.append((path, f"{what} {value!r} must be a number above 0 (e.g. 0.5, 2)"))
        return None
    return ratio


def _weight(cpu: str | None, credit: str | None, refused: list[_Refusal]) -> int:
    cpu_ratio = _ratio(cpu, _CPU_PATH, "CPU", refused) if cpu else (1, 1)
    credit_ratio = _ratio(credit, _CREDIT_PATH, "CREDIT", refused) if credit else (DEFAULT_CREDIT, 1)
    if cpu_ratio is None or credit_ratio is None:
        return 0
    # Exact fractions, not floats: CPU=1.1 with CREDIT=100 is 110 credits, not ceil(110.00000000000001).
    numerator = cpu_ratio[0] * credit_ratio[0]
    denominator = cpu_ratio[1] * credit_ratio[1]
    weight = -(-numerator // denominator)
    if 1 <= weight <= MAX_WEIGHT:
        return weight
    assert cpu or credit  # the defaults alone always give 256
    shown = f"{weight}" if weight < 10**9 else "more than a billion"
    cpu_text = cpu.strip() if cpu else "1"
    credit_text = credit.strip() if credit else str(DEFAULT_CREDIT)
    refused.append(
        (
            _CPU_PATH if cpu else _CREDIT_PATH,
            f"CPU {cpu_text} x CREDIT {credit_text} gives a credit-scheduler weight of {shown}, "
            f"outside 1..{MAX_WEIGHT}: change CPU (or CREDIT in the driver defaults)",
        )
    )
    return 0


@functools.lru_cache(maxsize=1024)
def _sizing(
    memory_text: str | None,
    maxmem_text: str | None,
    vcpus_text: str | None,
    maxvcpus_text: str | None,
    cpu: str | None,
    credit: str | None,
    dtype: DomainType,
) -> tuple[Sizing, tuple[_Refusal, ...]]:
    """The sizing these values give, and what is wrong with them, in order; pure, so
    cached: a cloud's VMs come in a few sizes."""
    refused: list[_Refusal] = []
    memory = None
    if not memory_text:
        refused.append(("TEMPLATE/MEMORY", "the VM has no MEMORY: set it in MiB, e.g. MEMORY = 1024"))
    else:
        memory = _integer(memory_text, "TEMPLATE/MEMORY", "MEMORY (MiB)", 1, MAX_MEMORY_MIB, refused)
    maxmem = None
    if maxmem_text:
        path = "TEMPLATE/MEMORY_MAX"
        maxmem = _integer(maxmem_text, path, "MEMORY_MAX (MiB)", 1, MAX_MEMORY_MIB, refused)
        if maxmem is not None and memory is not None and maxmem < memory:
            refused.append((path, f"MEMORY_MAX {maxmem} is below MEMORY {memory}"))

    limit = MAX_VCPUS[dtype]
    vcpus = _integer(vcpus_text, _VCPU, "VCPU", 1, limit, refused) if vcpus_text else None
    maxvcpus = None
    if maxvcpus_text:
        path = "TEMPLATE/VCPU_MAX"
        maxvcpus = _integer(maxvcpus_text, path, "VCPU_MAX", 1, limit, refused)
        if not vcpus_text:
            # Without vcpus xl would bring every one of maxvcpus online; OpenNebula's VCPU defaults to 1.
            vcpus = 1
        if maxvcpus is not None and vcpus is not None and maxvcpus < vcpus:
            refused.append((path, f"VCPU_MAX {maxvcpus} is below VCPU {vcpus}"))

    weight = _weight(cpu, credit, refused)
    return Sizing(memory or 0, maxmem, vcpus, maxvcpus, weight), tuple(refused)


def resolve_sizing(resolver: Resolver, dtype: DomainType, findings: Findings) -> Sizing:
    template = resolver.template
    sizing, refused = _sizing(
        template.get_exact("MEMORY") or None,
        template.get_exact("MEMORY_MAX") or None,
        resolver.value("VCPU"),
        template.get_exact("VCPU_MAX") or None,
        template.get_exact("CPU") or None,
        resolver.defaults.get_exact("CREDIT") or None,
        dtype,
    )
    for path, sentence in refused:
        findings.refuse(resolver.single_path("VCPU") if path is _VCPU else path, sentence)
    return sizing
