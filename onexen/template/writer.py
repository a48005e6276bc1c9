"""Writes a `Template` back as OpenNebula template syntax.

Every value is double-quoted with `\\` and `"` escaped, so any string reads back
as written: `parse(dumps(t)) == t` for every template whose keys are names.
"""

from __future__ import annotations

import re

from onexen.template.model import Template, Vector

__all__ = ["dumps", "quote"]

_NAME = re.compile(r"[A-Za-z0-9_]+\Z")


def quote(value: str) -> str:
    """`value` as a quoted template string."""
    if "\\" in value or '"' in value:
        value = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{value}"'


def _check_key(key: str) -> str:
    if not _NAME.match(key):
        raise ValueError(f"{key!r} cannot be a template key: use letters, digits and _")
    return key.upper()


def _vector(vector: Vector, inline: bool) -> str:
    if not vector:
        return "[ ]"
    parts = [f"{_check_key(key)} = {quote(value)}" for key, value in vector.items()]
    if inline:
        return "[ " + ", ".join(parts) + " ]"
    return "[\n  " + ",\n  ".join(parts) + " ]"


def dumps(template: Template, *, inline: bool = False) -> str:
    """The template as text: one attribute per line, or all on one line with `inline`
    (the shape of a monitoring payload)."""
    lines = []
    for key, value in template.items():
        text = _vector(value, inline) if isinstance(value, Vector) else quote(value)
        lines.append(f"{_check_key(key)} = {text}")
    if inline:
        return " ".join(lines)
    return "".join(line + "\n" for line in lines)
