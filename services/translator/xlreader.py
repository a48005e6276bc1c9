"""A reader for xl domain config text (xl.cfg(5)), as strict as libxlu's parser.

Production has no xen-utils, yet a `RAW` section is pasted verbatim into the
config: this reader re-reads the final text so a RAW that would make `xl create`
fail to parse is refused before it reaches a host. It follows Xen 4.17's
libxlu lexer and grammar:

* names are `[a-z][_0-9a-z]*` (an upper-case letter is a lexical error);
* numbers `[0-9][0-9a-fx]*`; strings in '...' or "..." on one line, with the
  escapes \\" \\' \\\\ \\a \\b \\f \\n \\r \\t \\v (libxlu rejects \\x.. and
  mangles octal escapes, so both are refused here);
* `name = value`, `name += value`, lists `[ v, v, ]` (nested, newlines allowed
  inside), statements end at a new line or `;`, `#` comments run to a new line
  (a comment on the last line without a new line is an error, as in libxlu);
* tab and space are the only blanks: a CR is a lexical error.

Values keep libxl's types: a string, or a tuple of values for a list.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

__all__ = ["XlSetting", "XlSyntaxError", "XlValue", "effective", "read"]

XlValue = str | tuple["XlValue", ...]


class XlSyntaxError(ValueError):
    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(f"line {line}, column {column}: {message}")
        self.line = line
        self.column = column
        self.message = message


class XlSetting(NamedTuple):
    name: str
    value: XlValue
    append: bool  # `+=`
    line: int


# Blanks are absorbed before each token, and anything else that is not a token is
# `bad`, so consecutive matches cover the whole text.
_TOKEN = re.compile(
    r"""
    [ \t]*(?:
      (?P<newline>\n|\#[^\n]*\n)
    | (?P<ident>[a-z][_0-9a-z]*)
    | (?P<punct>[,\[\]=;])
    | (?P<string>'(?:[^'\\\n]|\\[^\n])*'|"(?:[^"\\\n]|\\[^\n])*")
    | (?P<number>[0-9][0-9a-fx]*)
    | (?P<append>\+=)
    | (?P<bad>[^\n])
    | (?P<end>\Z)
    )
    """,
    re.VERBOSE,
)
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r"}
_ESCAPES |= {"t": "\t", "v": "\v"}
_ESCAPE = re.compile(r"\\(.)")
_BAD_ESCAPE = "invalid escape in a quoted string: only \\\" \\' \\\\ \\a \\b \\f \\n \\r \\t \\v"

# (kind, value, position, line): kind is the group name, or the punctuation itself;
# value is the dequoted text of a string.
_Token = tuple[str, str, int, int]
_MAX_DEPTH = 64


def _dequote(text: str) -> str | None:
    body = text[1:-1]
    if "\\" not in body:
        return body
    bad = False

    def replace(match: re.Match[str]) -> str:
        nonlocal bad
        char = match.group(1)
        if char not in _ESCAPES:
            bad = True
            return ""
        return _ESCAPES[char]

    result = _ESCAPE.sub(replace, body)
    return None if bad else result


def _error(text: str, pos: int, message: str) -> XlSyntaxError:
    line = text.count("\n", 0, pos) + 1
    return XlSyntaxError(line, pos - text.rfind("\n", 0, pos), message)


def _lex(text: str) -> list[_Token]:
    nul = text.find("\x00")
    if nul >= 0:
        # libxlu reads C strings: everything after a NUL would silently vanish.
        raise _error(text, nul, "a NUL character cannot appear in an xl config")
    tokens: list[_Token] = []
    append = tokens.append
    line = 1
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup or "end"
        value = match.group(kind)
        pos = match.start(kind)
        if kind == "newline":
            append(("newline", "\n", pos, line))
            line += 1
        elif kind == "punct":
            append((value, value, pos, line))
        elif kind == "string":
            dequoted = _dequote(value)
            if dequoted is None:
                raise _error(text, pos, _BAD_ESCAPE)
            append((kind, dequoted, pos, line))
        elif kind == "bad":
            hint = ""
            if value == "#":
                hint = " (a comment must end with a new line)"
            elif value in "'\"":
                hint = " (an unterminated string, or one with a new line or a backslash before the end)"
            elif value.isupper():
                hint = " (xl names are lower case)"
            raise _error(text, pos, f"lexical error near {value!r}{hint}")
        else:
            append((kind, value, pos, line))
            if kind == "end":
                break
    return tokens


class _Parser:
    __slots__ = ("at", "text", "tokens")

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _lex(text)
        self.at = 0

    def near(self, token: _Token, wanted: str) -> XlSyntaxError:
        kind, value = token[0], token[1]
        found = {"end": "the end of the text", "newline": "a new line"}.get(kind, repr(value))
        return _error(self.text, token[2], f"syntax error near {found}: expected {wanted}")

    def settings(self) -> list[XlSetting]:
        tokens = self.tokens
        out: list[XlSetting] = []
        while True:
            token = tokens[self.at]
            self.at += 1
            kind = token[0]
            if kind == "end":
                return out
            if kind == "newline" or kind == ";":
                continue
            if kind != "ident":
                raise self.near(token, "a setting name")
            op = tokens[self.at]
            self.at += 1
            if op[0] != "=" and op[0] != "append":
                raise self.near(op, f"'=' or '+=' after {token[1]}")
            value = self.value()
            out.append(XlSetting(token[1], value, op[0] == "append", token[3]))
            after = tokens[self.at]
            if after[0] not in ("newline", ";", "end"):
                raise self.near(after, "a new line or ';' after the value")

    def value(self, depth: int = 0) -> XlValue:
        token = self.tokens[self.at]
        self.at += 1
        kind = token[0]
        if kind == "string" or kind == "number":
            return token[1]
        if kind == "[":
            if depth >= _MAX_DEPTH:
                # libxlu's parser stack gives up too, and Python's recursion would.
                raise _error(self.text, token[2], f"lists nested more than {_MAX_DEPTH} deep")
            return self.list_(depth + 1)
        raise self.near(token, "a string, a number or '['")

    def skip_newlines(self) -> None:
        tokens = self.tokens
        while tokens[self.at][0] == "newline":
            self.at += 1

    def list_(self, depth: int) -> tuple[XlValue, ...]:
        tokens = self.tokens
        items: list[XlValue] = []
        self.skip_newlines()
        if tokens[self.at][0] == "]":
            self.at += 1
            return ()
        while True:
            items.append(self.value(depth))
            self.skip_newlines()
            token = tokens[self.at]
            self.at += 1
            if token[0] == "]":
                return tuple(items)
            if token[0] != ",":
                raise self.near(token, "',' or ']' in a list")
            self.skip_newlines()
            if tokens[self.at][0] == "]":
                self.at += 1
                return tuple(items)


def read(text: str) -> list[XlSetting]:
    """Every setting in `text`, in order; raises `XlSyntaxError` where libxlu would fail to parse."""
    return _Parser(text).settings()


def effective(settings: Sequence[XlSetting]) -> dict[str, XlValue]:
    """The value xl uses for each name: the last `=` wins, `+=` appends to what came before
    (strings concatenate, lists extend). Raises `XlSyntaxError` for `+=` across types."""
    values: dict[str, XlValue] = {}
    for setting in settings:
        previous = values.get(setting.name)
        if setting.append and previous is not None:
            if isinstance(previous, str) != isinstance(setting.value, str):
                raise XlSyntaxError(setting.line, 1, f"{setting.name} += mixes a list and a string")
            if isinstance(previous, str):
                assert isinstance(setting.value, str)
                values[setting.name] = previous + setting.value
            else:
                assert isinstance(setting.value, tuple)
                values[setting.name] = previous + setting.value
        else:
            values[setting.name] = setting.value
    return values
