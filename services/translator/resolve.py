"""Where each setting comes from (the VM template, else the driver defaults), and the
findings a translation collects on the way (refusals and warnings).

Precedence is upstream's: a non-empty value in the VM template wins; otherwise
the defaults file's, looked up per sub-attribute (a default OS/ROOT also applies
to a template that sets only OS/KERNEL). Every value carries the path it came
from, so a refusal names the field to fix: `TEMPLATE/OS/KERNEL` or
`defaults/OS/KERNEL`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import NamedTuple

from onexen.template import Template, Vector

__all__ = [
    "DEFAULTS",
    "IPV4",
    "Findings",
    "Resolver",
    "Sourced",
    "control_problem",
    "is_yes",
    "small_number",
]

DEFAULTS = "defaults"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
# Dotted-quad IPv4 without leading zeros (which some tools read as octal).
IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}\Z")
# Bounded: an id is a 32-bit number in oned, and int() refuses very long digit strings.
_DIGITS = re.compile(r"\s*([0-9]{1,10})\s*\Z")


class Sourced(NamedTuple):
    """A value and where it came from (`TEMPLATE/DISK[1]/DRIVER`, `defaults/DISK/DRIVER`)."""

    value: str
    path: str


class Findings:
    """What a translation found wrong (refusals) or worth saying (warnings), in order."""

    __slots__ = ("violations", "warnings")

    def __init__(self) -> None:
        self.violations: list[tuple[str, str]] = []
        self.warnings: list[str] = []

    def refuse(self, path: str, description: str) -> None:
        self.violations.append((path, description))

    def warn(self, path: str, description: str) -> None:
        self.warnings.append(f"{path}: {description}")


def control_problem(value: str) -> str | None:
    # isprintable() is the fast common answer; it also refuses characters we accept.
    if not value.isprintable() and _CONTROL.search(value):
        return "contains a control character (a new line, a tab, ...), which no xl value may hold"
    return None


def is_yes(value: str) -> bool:
    """OpenNebula's boolean: true iff YES, in any case."""
    return value.strip().upper() == "YES"


@functools.lru_cache(maxsize=1024)
def small_number(text: str) -> int | None:
    """The id in `text` (up to ten digits, blanks around them allowed), else None.

    Cached: for the ids that repeat from VM to VM (DISK_ID, NIC_ID), never a VM's own.
    """
    match = _DIGITS.match(text)
    return int(match.group(1)) if match else None


class Resolver:
    """Keys are upper case here: they are constants of the translator, not user input.

    `single`, `sub`, `subs` and `own` give each value with its path. The hot path of a
    translation uses `value`, `sub_values` and `vector.get_exact` instead, which build no
    path, and asks `single_path` or `sub_path` for one only to refuse or warn.
    """

    __slots__ = ("defaults", "template")

    def __init__(self, template: Template, defaults: Template) -> None:
        self.template = template
        self.defaults = defaults

    def single(self, key: str, *, from_template: bool = True, from_defaults: bool = True) -> Sourced | None:
        if from_template:
            value = self.template.get_exact(key)
            if value:
                return Sourced(value, f"TEMPLATE/{key}")
        if from_defaults:
            value = self.defaults.get_exact(key)
            if value:
                return Sourced(value, f"{DEFAULTS}/{key}")
        return None

    def value(self, key: str, *, from_template: bool = True, from_defaults: bool = True) -> str | None:
        """The value `single` finds, without its path (`single_path`)."""
        if from_template:
            value = self.template.get_exact(key)
            if value:
                return value
        if from_defaults:
            value = self.defaults.get_exact(key)
            if value:
                return value
        return None

    def single_path(self, key: str) -> str:
        """The path of `value(key)` when both sources are read: the template's when it is set."""
        return f"TEMPLATE/{key}" if self.template.get_exact(key) else f"{DEFAULTS}/{key}"

    def sub_values(self, vector: str) -> Callable[[str], str | None]:
        """`subs` without the paths (`sub_path`): a lookup giving the value, or None or ""
        when neither vector sets it."""
        mine = self.template.vector_exact(vector)
        default = self.defaults.vector_exact(vector)
        if default is None:
            return _nothing if mine is None else mine.get_exact
        if mine is None:
            return default.get_exact
        mine_get, default_get = mine.get_exact, default.get_exact
        return lambda key: mine_get(key) or default_get(key)

    def sub_path(self, vector: str, key: str) -> str:
        """The path of `sub_values(vector)(key)`: the template's when it sets the value."""
        mine = self.template.vector_exact(vector)
        if mine is not None and mine.get_exact(key):
            return f"TEMPLATE/{vector}/{key}"
        return f"{DEFAULTS}/{vector}/{key}"

    def default_sub(self, vector: str, key: str) -> Sourced | None:
        found = self.defaults.vector_exact(vector)
        value = found.get_exact(key) if found is not None else None
        return Sourced(value, f"{DEFAULTS}/{vector}/{key}") if value else None

    def sub(self, vector: str, key: str) -> Sourced | None:
        """`vector/key` from the template's first `vector`, else from the defaults'."""
        return self.subs(vector)(key)

    def subs(self, vector: str) -> Callable[[str], Sourced | None]:
        """`sub` for many keys of one vector: looks the two vectors up once."""
        mine = self.template.vector_exact(vector)
        default = self.defaults.vector_exact(vector)

        def lookup(key: str) -> Sourced | None:
            value = mine.get_exact(key) if mine is not None else None
            if value:
                return Sourced(value, f"TEMPLATE/{vector}/{key}")
            value = default.get_exact(key) if default is not None else None
            return Sourced(value, f"{DEFAULTS}/{vector}/{key}") if value else None

        return lookup

    @staticmethod
    def own(vector: Vector, path: str, key: str) -> Sourced | None:
        """`key` of one vector (one DISK, one NIC), with its path."""
        value = vector.get_exact(key)
        return Sourced(value, f"{path}/{key}") if value else None


def _nothing(key: str) -> None:
    return None
