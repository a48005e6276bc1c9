"""The shape of what xl and xentop print: what must match between a real Xen host and simxen.

Values differ between any two hosts (domain ids, memory, CPU seconds, uuids); the shape does not:
a table's columns, `xl info`'s keys in order, the key paths of `xl list -l`'s JSON, the exit
code, and error texts with their numbers and ids blanked. The executor's parsers read exactly
these, so a simulator that matches them cannot hide a parsing bug from the tests.
"""

from __future__ import annotations

import json
import re
from typing import Any

_NUMBER = re.compile(r"\b\d+(\.\d+)?\b")
_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
_HEX = re.compile(r"\b0x[0-9a-f]+\b")


def blank(text: str) -> str:
    """`text` with ids, numbers and uuids replaced by placeholders, blank lines dropped."""
    text = _UUID.sub("<uuid>", text)
    text = _HEX.sub("<hex>", text)
    text = _NUMBER.sub("<n>", text)
    return "\n".join(line.rstrip() for line in text.splitlines() if line.strip())


def table(text: str) -> dict[str, Any]:
    """A whitespace-aligned table: its header words and the number of words of each row."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return {"header": [], "rows": []}
    return {"header": lines[0].split(), "rows": [len(line.split()) for line in lines[1:]]}


def host_table(text: str) -> dict[str, Any]:
    """`table` for a whole host's list, whose number of rows depends on what else runs there."""
    found = table(text)
    return {"header": found["header"], "row_words": sorted(set(found["rows"]))}


def info_keys(text: str) -> list[str]:
    """`xl info`: its keys in order (`key   : value` lines)."""
    return [line.split(":", 1)[0].strip() for line in text.splitlines() if ":" in line]


def json_paths(value: Any, prefix: str = "") -> set[str]:
    """Every key path of a JSON document with the type at its end; list items merged as `[]`."""
    if isinstance(value, dict):
        paths = {f"{prefix}{{}}"}
        for key, item in value.items():
            paths |= json_paths(item, f"{prefix}.{key}")
        return paths
    if isinstance(value, list):
        paths = {f"{prefix}[]"}
        for item in value:
            paths |= json_paths(item, f"{prefix}[]")
        return paths
    kind = "null" if value is None else type(value).__name__
    return {f"{prefix}:{kind}"}


def xl_json(text: str) -> set[str]:
    return json_paths(json.loads(text)) if text.strip() else set()


def xentop(text: str) -> dict[str, Any]:
    """`xentop -b`: the header's columns (every iteration repeats it) and the rows per iteration."""
    lines = [line for line in text.splitlines() if line.strip()]
    headers = [line.split() for line in lines if line.split()[:1] == ["NAME"]]
    rows = [line.split() for line in lines if line.split()[:1] != ["NAME"]]
    return {
        "header": headers[0] if headers else [],
        "iterations": len(headers),
        "rows": len(rows),
        "row_words": sorted({len(row) for row in rows}),
    }
