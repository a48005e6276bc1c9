"""Reads OpenNebula template syntax into a `Template`.

    NAME = value                 bare word: anything but blanks and = # , [ ] "
    NAME = "quoted \\"value\\""    may span lines; \\" and \\\\ are escapes, any other
                                 backslash is kept as written (Windows paths survive)
    NAME =                       empty value (the line ends after =)
    NAME = [ A = "1", B = 2 ]    vector, over as many lines as wanted
    # comment                    up to the end of the line

Attributes are separated by any whitespace, so a monitoring line such as
`NAME=one-42 STATE=a CPU=0.3` reads as well as a file. Keys are upper-cased.
"""

from __future__ import annotations

import re

from onexen.template.model import Template, Value, Vector

__all__ = ["TemplateSyntaxError", "parse"]


class TemplateSyntaxError(ValueError):
    """Where (1-based line and column) and why the text is not template syntax."""

    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(f"line {line}, column {column}: {message}")
        self.line = line
        self.column = column
        self.message = message


_SKIP = re.compile(r"(?:[ \t\r\n]+|#[^\n]*)*")
# CR counts as a blank so files with CRLF line ends read the same.
_BLANKS = re.compile(r"[ \t\r]*")
_NAME = re.compile(r"[A-Za-z0-9_]+")
_BARE = re.compile(r"[^\s=#,\[\]\"]+")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"', re.DOTALL)
_ESCAPE = re.compile(r'\\([\\"])')


def parse(text: str) -> Template:
    """Parse `text`; raises `TemplateSyntaxError` naming the line and column."""
    return Template(_Parser(text).attributes())


class _Parser:
    __slots__ = ("end", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.end = len(text)

    def error(self, pos: int, message: str) -> TemplateSyntaxError:
        line = self.text.count("\n", 0, pos) + 1
        column = pos - self.text.rfind("\n", 0, pos)
        return TemplateSyntaxError(line, column, message)

    def describe(self, pos: int) -> str:
        if pos >= self.end:
            return "the end of the text"
        char = self.text[pos]
        return "a new line" if char == "\n" else repr(char)

    def skip(self, pos: int) -> int:
        # Both patterns match the empty string, so a match always exists.
        match = _SKIP.match(self.text, pos)
        return match.end() if match else pos

    def blanks(self, pos: int) -> int:
        match = _BLANKS.match(self.text, pos)
        return match.end() if match else pos

    def attributes(self) -> list[tuple[str, Value]]:
        items: list[tuple[str, Value]] = []
        pos = self.skip(0)
        while pos < self.end:
            key, pos = self.name(pos, "an attribute name")
            pos = self.equals(pos, key)
            value, pos = self.value(pos, key)
            items.append((key, value))
            after = self.skip(pos)
            if after == pos and pos < self.end:
                raise self.error(pos, f"expected a blank or a new line after the value of {key}")
            pos = after
        return items

    def name(self, pos: int, what: str) -> tuple[str, int]:
        match = _NAME.match(self.text, pos)
        if match is None:
            raise self.error(pos, f"expected {what} (letters, digits, _), found {self.describe(pos)}")
        return match.group().upper(), match.end()

    def equals(self, pos: int, key: str) -> int:
        pos = self.blanks(pos)
        if not self.text.startswith("=", pos):
            raise self.error(pos, f"expected '=' after {key}, found {self.describe(pos)}")
        return self.blanks(pos + 1)

    def value(self, pos: int, key: str) -> tuple[Value, int]:
        if pos < self.end and self.text[pos] == "[":
            return self.vector(pos + 1, key)
        return self.scalar(pos, key, stops="\n#")

    def scalar(self, pos: int, key: str, stops: str) -> tuple[str, int]:
        if pos >= self.end or self.text[pos] in stops:
            return "", pos
        char = self.text[pos]
        if char == '"':
            match = _QUOTED.match(self.text, pos)
            if match is None:
                raise self.error(pos, f"the quoted value of {key} is never closed with '\"'")
            raw = match.group(1)
            return (_ESCAPE.sub(r"\1", raw) if "\\" in raw else raw), match.end()
        if char == "[":
            raise self.error(pos, f"{key} is inside a vector and cannot hold another vector")
        match = _BARE.match(self.text, pos)
        if match is None:
            raise self.error(pos, f"unexpected {self.describe(pos)} in the value of {key}")
        return match.group(), match.end()

    def vector(self, pos: int, key: str) -> tuple[Vector, int]:
        items: list[tuple[str, str]] = []
        pos = self.skip(pos)
        while True:
            if pos >= self.end:
                raise self.error(pos, f"vector {key} is never closed with ']'")
            if self.text[pos] == "]":
                return Vector(items), pos + 1
            sub, pos = self.name(pos, f"a key inside vector {key} or ']'")
            pos = self.equals(pos, f"{key}/{sub}")
            value, pos = self.scalar(pos, f"{key}/{sub}", stops=",]\n#")
            items.append((sub, value))
            pos = self.skip(pos)
            if pos < self.end and self.text[pos] == ",":
                pos = self.skip(pos + 1)
            elif pos < self.end and self.text[pos] != "]":
                raise self.error(pos, f"expected ',' or ']' in vector {key}, found {self.describe(pos)}")
