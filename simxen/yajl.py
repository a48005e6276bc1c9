"""JSON text exactly as libxl prints it (yajl generator with ``yajl_gen_beautify``).

It differs from ``json.dumps(indent=4)`` in two visible ways: an empty object or array keeps an
empty line between its brackets (``{\\n\\n    }``), and the document ends with a newline.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _string(s: str) -> str:
    out = []
    for ch in s:
        esc = _ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)  # yajl passes UTF-8 through and does not escape '/'
    return '"' + "".join(out) + '"'


def _value(v: Any, depth: int, out: list[str]) -> None:
    pad = "    "
    if isinstance(v, dict):
        out.append("{\n")
        if not v:
            out.append("\n" + pad * depth + "}")
            return
        items = list(v.items())
        for i, (k, item) in enumerate(items):
            out.append(pad * (depth + 1) + _string(str(k)) + ": ")
            _value(item, depth + 1, out)
            out.append(",\n" if i < len(items) - 1 else "\n")
        out.append(pad * depth + "}")
    elif isinstance(v, list | tuple):
        out.append("[\n")
        if not v:
            out.append("\n" + pad * depth + "]")
            return
        for i, item in enumerate(v):
            out.append(pad * (depth + 1))
            _value(item, depth + 1, out)
            out.append(",\n" if i < len(v) - 1 else "\n")
        out.append(pad * depth + "]")
    elif isinstance(v, bool):
        out.append("true" if v else "false")
    elif v is None:
        out.append("null")
    elif isinstance(v, int):
        out.append(str(v))
    elif isinstance(v, float):
        out.append(repr(v))
    else:
        out.append(_string(str(v)))


def dumps(value: Any) -> str:
    """Beautified JSON, newline-terminated, as ``libxl_*_to_json`` returns it."""
    out: list[str] = []
    _value(value, 0, out)
    out.append("\n")
    return "".join(out)
