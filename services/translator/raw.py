"""RAW sections: xl text pasted verbatim after the translated config, and the re-read
that makes sure the result is still a config xl parses.

Template `RAW = [ TYPE = "xen", DATA = "..." ]` vectors (TYPE in any case) come
first, then the defaults file's `RAW` (a string, or a vector like the template's).
CRLF line ends become LF (a browser form sends CRLF, and libxlu rejects a CR).
Each RAW is read on its own first, so a refusal names the RAW that breaks the
syntax; then the whole config's settings are combined as xl combines them, to
learn the final cpu_weight and catch a type/builder clash. RAW may not set
`name` (OpenNebula knows the domain as one-<ID>); a RAW replacing another
translated setting is allowed, with a warning (`overridden`).
"""

from __future__ import annotations

from typing import NamedTuple

from onexen.template import Vector
from services.translator.resolve import DEFAULTS, Findings, Resolver
from services.translator.sizing import MAX_WEIGHT
from services.translator.xlreader import XlSetting, XlSyntaxError, XlValue, effective, read

__all__ = ["RawChunk", "collect_raw", "final_weight", "overridden"]


class RawChunk(NamedTuple):
    path: str
    text: str  # ends with a new line
    names: frozenset[str]  # the settings it assigns


def _xen_data(vector: Vector, path: str, findings: Findings) -> tuple[str, str] | None:
    kind = (vector.get_exact("TYPE") or "").strip().lower()
    if not kind:
        findings.warn(path, 'has no TYPE: only RAW with TYPE = "xen" reaches the xl config, ignored')
        return None
    data = vector.get_exact("DATA") or ""
    if kind != "xen" or not data.strip():
        return None
    return f"{path}/DATA", data


def collect_raw(resolver: Resolver, findings: Findings) -> list[RawChunk]:
    found: list[tuple[str, str]] = []
    for number, vector in enumerate(resolver.template.vectors("RAW"), start=1):
        item = _xen_data(vector, f"TEMPLATE/RAW[{number}]", findings)
        if item is not None:
            found.append(item)
    default = resolver.defaults.get_exact("RAW")
    if default and default.strip():
        found.append((f"{DEFAULTS}/RAW", default))
    default_vector = resolver.defaults.vector_exact("RAW")
    if default_vector is not None:
        item = _xen_data(default_vector, f"{DEFAULTS}/RAW", findings)
        if item is not None:
            found.append(item)
    chunks = []
    for path, data in found:
        text = data.replace("\r\n", "\n")
        if not text.endswith("\n"):
            text += "\n"
        try:
            names = frozenset(setting.name for setting in read(text))
        except XlSyntaxError as exc:
            findings.refuse(path, f"is not xl config syntax, so xl would refuse the whole config: {exc}")
            continue
        if "name" in names:
            findings.refuse(path, "sets name: the domain must stay one-<VM ID>, the name OpenNebula knows")
            continue
        chunks.append(RawChunk(path, text, names))
    return chunks


def _c_long(value: XlValue) -> int | None:
    """What xl's strtol(value, 0) reads, or None when xl would not take it as a number."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    sign = -1 if text.startswith("-") else 1
    digits = text[1:] if text[:1] in "+-" else text
    try:
        if digits[:2].lower() == "0x":
            return sign * int(digits[2:], 16)
        if digits.startswith("0") and len(digits) > 1:
            return sign * int(digits[1:], 8)
        return sign * int(digits, 10)
    except ValueError:
        return None


def _xl_type(value: str) -> str | None:
    # xl compares with strncmp(value, name, strlen(value)): a prefix selects, in this order.
    return next((name for name in ("hvm", "pv", "pvh") if name.startswith(value)), None)


def final_weight(settings: list[XlSetting], chunks: list[RawChunk], weight: int, findings: Findings) -> int:
    """The cpu_weight xl ends with once the RAW chunks are applied to the translated
    settings; refuses a RAW whose result xl would reject."""
    if not chunks:
        return weight
    try:
        values = effective(settings)
    except XlSyntaxError as exc:
        # Each RAW parsed alone; together they can still clash (a += of a list onto a string).
        findings.refuse(chunks[0].path, f"the config with its RAW sections does not parse: {exc}")
        return weight
    builder, kind = values.get("builder"), values.get("type")
    raw_path = next((c.path for c in chunks if c.names & {"builder", "type"}), chunks[0].path)
    xl_kind = _xl_type(kind) if isinstance(kind, str) else None
    if isinstance(kind, str) and xl_kind is None:
        findings.refuse(raw_path, f"sets type {kind!r}: xl knows pv, pvh and hvm")
    if isinstance(builder, str) and xl_kind is not None:
        meant = "hvm" if "hvm".startswith(builder) else "pv" if "generic".startswith(builder) else None
        if meant != xl_kind:
            findings.refuse(
                raw_path, f"builder {builder!r} contradicts type {kind!r}: xl refuses both; set type only"
            )
    if not any("cpu_weight" in chunk.names for chunk in chunks):
        return weight
    parsed = _c_long(values.get("cpu_weight", ""))
    if parsed is None or not 1 <= parsed <= MAX_WEIGHT:
        path = next(c.path for c in reversed(chunks) if "cpu_weight" in c.names)
        findings.refuse(
            path, f"sets cpu_weight to {values.get('cpu_weight')!r}: use a number from 1 to {MAX_WEIGHT}"
        )
        return weight
    return parsed


def overridden(chunks: list[RawChunk], generated: set[str], findings: Findings) -> None:
    """Warn for each translated setting a RAW assigns again (xl keeps the last one)."""
    for chunk in chunks:
        for key in sorted(chunk.names & generated):
            findings.warn(chunk.path, f"sets {key}, replacing the value translated from the template")
