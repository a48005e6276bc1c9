"""The value model of an OpenNebula template: ordered, repeated keys, vectors.

Keys are upper-cased on the way in, as oned's parser does, so every lookup is
case-insensitive. Both classes are immutable: a parsed defaults file can be
cached and shared between concurrent translations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TypeVar, overload

__all__ = ["Template", "Value", "Vector"]

_T = TypeVar("_T")


class Vector(Mapping[str, str]):
    """A vector attribute (`DISK = [ TARGET = "xvda", ... ]`): an ordered mapping.

    A sub-key given twice keeps its first value, as oned's vector attributes do.
    """

    __slots__ = ("_data", "get_exact")

    # `get` for a key already in upper case: no case folding. The hot path of readers that
    # look up constant names many times, so it is the dict's own `get`, bound per vector
    # (or, for a vector read from XML, the element's `findtext`: keys are attribute names,
    # letters, digits and _, never an ElementTree path).
    get_exact: Callable[[str], str | None]

    def __init__(self, items: Iterable[tuple[str, str]] | Mapping[str, str] = ()) -> None:
        pairs = items.items() if isinstance(items, Mapping) else items
        data: dict[str, str] = {}
        for key, value in pairs:
            data.setdefault(key.upper(), value)
        self._data = data
        self.get_exact = data.get

    @classmethod
    def of_upper(cls, data: dict[str, str]) -> Vector:
        """A vector over `data` as it is: its keys must be upper case already (no copy)."""
        vector = cls.__new__(cls)
        vector._data = data
        vector.get_exact = data.get
        return vector

    def __getitem__(self, key: str) -> str:
        return self._data[key.upper()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.upper() in self._data

    @overload
    def get(self, key: str, /) -> str | None: ...
    @overload
    def get(self, key: str, default: str, /) -> str: ...
    @overload
    def get(self, key: str, default: _T, /) -> str | _T: ...
    def get(self, key: str, default: object = None, /) -> object:
        # Mapping.get would go through __getitem__ and a KeyError for every miss.
        return self._data.get(key.upper(), default)

    def __eq__(self, other: object) -> bool:
        # Order is part of the value: a vector written back must list its keys as read.
        if isinstance(other, Vector):
            return list(self._data.items()) == list(other._data.items())
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self._data.items()))

    def __repr__(self) -> str:
        return f"Vector({list(self._data.items())!r})"


Value = str | Vector


class Template:
    """An ordered list of attributes; a key may appear several times (`DISK`, `NIC`)."""

    __slots__ = ("_index", "_items", "_single", "_vector", "get_exact", "vector_exact")

    # `get` and `vector` for a key already in upper case (no case folding): the hot path of
    # readers that look up constant names, so the lookup dicts' own `get`, bound per template.
    get_exact: Callable[[str], str | None]
    vector_exact: Callable[[str], Vector | None]

    def __init__(self, items: Iterable[tuple[str, Value]] = ()) -> None:
        self._build(tuple((key.upper(), value) for key, value in items))

    @classmethod
    def of_upper(cls, items: tuple[tuple[str, Value], ...]) -> Template:
        """A template over `items` as they are: their keys must be upper case already."""
        template = cls.__new__(cls)
        template._build(items)
        return template

    @classmethod
    def of_index(
        cls,
        items: tuple[tuple[str, Value], ...],
        index: dict[str, list[Value]],
        single: dict[str, str],
        vector: dict[str, Vector],
    ) -> Template:
        """A template over `items` with its lookups already built (no copy), for a reader
        that indexes as it reads: keys upper case; `index` maps each key to its values in
        order, `single` and `vector` each key to its first single and first vector value."""
        template = cls.__new__(cls)
        template._items = items
        template._index = index
        template._single = single
        template._vector = vector
        template.get_exact = single.get
        template.vector_exact = vector.get
        return template

    def _build(self, items: tuple[tuple[str, Value], ...]) -> None:
        self._items = items
        # Lookups by key are what every reader does, many times: index once.
        index: dict[str, list[Value]] = {}
        single: dict[str, str] = {}
        vector: dict[str, Vector] = {}
        for key, value in items:
            same = index.get(key)
            if same is None:
                index[key] = [value]
                # A key seen for the first time is in neither first-value map.
                if isinstance(value, str):
                    single[key] = value
                else:
                    vector[key] = value
                continue
            same.append(value)
            if isinstance(value, str):
                if key not in single:
                    single[key] = value
            elif key not in vector:
                vector[key] = value
        self._index = index
        self._single = single
        self._vector = vector
        self.get_exact = single.get
        self.vector_exact = vector.get

    def items(self) -> tuple[tuple[str, Value], ...]:
        return self._items

    def keys(self) -> list[str]:
        """Distinct keys in order of first appearance."""
        return list(self._index)

    def __iter__(self) -> Iterator[tuple[str, Value]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.upper() in self._index

    def get_all(self, key: str) -> list[Value]:
        """Every value of `key`, single and vector, in order."""
        return list(self._index.get(key.upper(), ()))

    def get(self, key: str, default: str | None = None) -> str | None:
        """The first single (non-vector) value of `key`."""
        return self._single.get(key.upper(), default)

    def strings(self, key: str) -> list[str]:
        return [v for v in self._index.get(key.upper(), ()) if isinstance(v, str)]

    def vector(self, key: str) -> Vector | None:
        """The first vector value of `key`."""
        return self._vector.get(key.upper())

    def vectors(self, key: str) -> list[Vector]:
        values = self._index.get(key.upper())
        if values is None:
            return []
        # Not isinstance(v, Vector): Vector is an ABC (a Mapping), whose isinstance is slow.
        return [v for v in values if not isinstance(v, str)]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Template):
            return self._items == other._items
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._items)

    def __repr__(self) -> str:
        return f"Template({list(self._items)!r})"
