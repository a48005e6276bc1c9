"""``json.loads``/``json.dumps`` (default options) straight from the C accelerator ``_json``.

The ``json`` package compiles regular expressions at import (``json.decoder`` imports ``re``),
about 10 ms of CPU that every simulated ``xl`` call would pay to read its state.  The C scanner
and encoder are what ``json`` itself uses for these calls, so the text is byte for byte the same
as ``json.dumps`` and the values as ``json.loads``.  Anything unusual (no ``_json``, a document
that does not parse) goes to the ``json`` package, so errors are the usual ``JSONDecodeError``.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_WHITESPACE = " \t\n\r"
_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}


class _ScannerContext:
    """The attributes ``_json.make_scanner`` reads from a ``JSONDecoder``."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__


def _default(o: Any) -> Any:
    raise TypeError(f"Object of type {o.__class__.__name__} is not JSON serializable")


try:
    import _json
except ImportError:  # pragma: no cover  (CPython always has it)
    _json = None  # type: ignore[assignment]

_scan: Callable[[str, int], tuple[Any, int]] | None = None
if _json is not None:
    try:
        _scan = _json.make_scanner(_ScannerContext())  # type: ignore[arg-type]
    except Exception:  # pragma: no cover  (another interpreter's private API)
        _scan = None


def loads(text: str) -> Any:
    if _scan is not None:
        start = len(text) - len(text.lstrip(_WHITESPACE))
        try:
            value, end = _scan(text, start)
        except StopIteration:
            value, end = None, -1
        if end >= 0 and not text[end:].strip(_WHITESPACE):
            return value
    import json  # for its exact error (or the result on an interpreter without _json)

    return json.loads(text)


def dumps(value: Any) -> str:
    if _json is not None:
        try:
            # a fresh encoder each time: its circular-reference markers must start empty
            encode = _json.make_encoder(
                {}, _default, _json.encode_basestring_ascii, None, ": ", ", ", False, False, True
            )
        except TypeError:  # pragma: no cover  (another interpreter's private API)
            pass
        else:
            return "".join(encode(value, 0))
    import json

    return json.dumps(value)
