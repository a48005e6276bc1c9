"""``dataclass``, ``field``, ``fields``, ``asdict`` and ``replace`` for the simulated toolstack.

Type checkers see the standard ``dataclasses`` (so mypy checks every record as a dataclass);
at run time these are small stand-ins, because ``import dataclasses`` pulls in ``inspect``,
``ast``, ``enum`` and ``re``, which cost every simulated ``xl`` call about 40 ms of CPU, more
than the whole rest of a call.  Only what simxen's records use is supported: ``eq``, ``frozen``,
``repr=False`` fields, ``default``/``default_factory``, ``__post_init__`` and inheritance.
Instances behave like dataclass instances for these (``__init__`` signature, ``==``, ``repr``,
hashing, ``FrozenInstanceError``), but ``dataclasses.fields()`` does not know them: use this
module's ``fields``.
"""

from __future__ import annotations

__all__ = ["FrozenInstanceError", "asdict", "dataclass", "field", "fields", "replace"]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class _FrozenInstanceError(AttributeError):
    pass


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
_FIELDS = "__simxen_fields__"


class Field:
    __slots__ = ("default", "default_factory", "name", "repr")

    def __init__(self, default: Any = MISSING, default_factory: Any = MISSING, repr: bool = True) -> None:
        if default is not MISSING and default_factory is not MISSING:
            raise ValueError("cannot specify both default and default_factory")
        self.name = ""
        self.default = default
        self.default_factory: Callable[[], Any] | Any = default_factory
        self.repr = repr

    def __repr__(self) -> str:
        return f"Field(name={self.name!r})"


def _field(*, default: Any = MISSING, default_factory: Any = MISSING, repr: bool = True) -> Any:
    return Field(default, default_factory, repr)


def _fields(obj: Any) -> tuple[Field, ...]:
    try:
        found: tuple[Field, ...] = getattr(obj, _FIELDS)
    except AttributeError:
        raise TypeError("must be called with a simxen record type or instance") from None
    return found


def _is_record(obj: Any) -> bool:
    return hasattr(type(obj), _FIELDS)


def _copy_value(value: Any) -> Any:
    if _is_record(value):
        return _asdict(value)
    if isinstance(value, list | tuple):
        return type(value)(_copy_value(v) for v in value)
    if isinstance(value, dict):
        return {_copy_value(k): _copy_value(v) for k, v in value.items()}
    return value


def _asdict(obj: Any) -> dict[str, Any]:
    if not _is_record(obj):
        raise TypeError("asdict() should be called on simxen record instances")
    return {f.name: _copy_value(getattr(obj, f.name)) for f in _fields(obj)}


def _replace(obj: Any, /, **changes: Any) -> Any:
    for f in _fields(obj):
        if f.name not in changes:
            changes[f.name] = getattr(obj, f.name)
    return type(obj)(**changes)


def _make_init(cls_name: str, flds: tuple[Field, ...], post_init: bool) -> Callable[..., None]:
    known = {f.name for f in flds}
    # object.__setattr__: a frozen record's own __setattr__ refuses every assignment
    setter = object.__setattr__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if len(args) > len(flds):
            raise TypeError(
                f"{cls_name}.__init__() takes {len(flds) + 1} positional arguments "
                f"but {len(args) + 1} were given"
            )
        if not known.issuperset(kwargs):
            unknown = sorted(set(kwargs) - known)
            raise TypeError(f"{cls_name}.__init__() got an unexpected keyword argument '{unknown[0]}'")
        for f, value in zip(flds, args, strict=False):
            if f.name in kwargs:
                raise TypeError(f"{cls_name}.__init__() got multiple values for argument '{f.name}'")
            setter(self, f.name, value)
        missing = []
        for f in flds[len(args) :]:
            if f.name in kwargs:
                value = kwargs[f.name]
            elif f.default is not MISSING:
                value = f.default
            elif f.default_factory is not MISSING:
                value = f.default_factory()
            else:
                missing.append(f.name)
                continue
            setter(self, f.name, value)
        if missing:
            raise TypeError(f"{cls_name}.__init__() missing required argument(s): {', '.join(missing)}")
        if post_init:
            self.__post_init__()

    return __init__


def _process(cls: type[Any], eq: bool, frozen: bool) -> type[Any]:
    by_name: dict[str, Field] = {}  # insertion order is field order, as in dataclasses
    for base in reversed(cls.__mro__[1:]):
        for inherited in getattr(base, _FIELDS, ()):
            by_name[inherited.name] = inherited
    namespace = cls.__dict__
    own = namespace.get("__annotations__", {})  # not inspect.get_annotations: inspect is the cost
    for name, annotation in own.items():
        if isinstance(annotation, str) and annotation.startswith(("ClassVar", "typing.ClassVar")):
            continue
        value = namespace.get(name, MISSING)
        if type(value) is Field:
            f = value
            if f.default is MISSING:
                delattr(cls, name)  # a default_factory field has no class attribute
            else:
                setattr(cls, name, f.default)
        else:
            f = Field(default=value)
            if type(value) in (list, dict, set):
                raise ValueError(f"mutable default {type(value)} for field {name} is not allowed")
        f.name = name
        by_name[name] = f  # a redefined field keeps its base's place, as in dataclasses
    flds = list(by_name.values())
    seen_default = False
    for f in flds:
        has_default = f.default is not MISSING or f.default_factory is not MISSING
        if seen_default and not has_default:
            raise TypeError(f"non-default argument '{f.name}' follows default argument")
        seen_default = seen_default or has_default
    record_fields = tuple(flds)
    names = [f.name for f in record_fields]
    shown = [f.name for f in record_fields if f.repr]
    methods: dict[str, Any] = {
        _FIELDS: record_fields,
        "__init__": _make_init(cls.__qualname__, record_fields, hasattr(cls, "__post_init__")),
    }

    def values(self: Any) -> tuple[Any, ...]:
        return tuple(getattr(self, n) for n in names)

    def __repr__(self: Any) -> str:
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in shown)
        return f"{type(self).__qualname__}({inner})"

    methods["__repr__"] = __repr__
    if eq:

        def __eq__(self: Any, other: Any) -> Any:
            if other.__class__ is not self.__class__:
                return NotImplemented
            return values(self) == values(other)  # tuples, as dataclasses compare (identity first)

        methods["__eq__"] = __eq__
        if frozen:

            def __hash__(self: Any) -> int:
                return hash(values(self))

            methods["__hash__"] = __hash__
        elif "__hash__" not in cls.__dict__:
            methods["__hash__"] = None  # as dataclasses do: mutable and comparable, so unhashable
    if frozen:

        def __setattr__(self: Any, name: str, value: Any) -> None:
            raise _FrozenInstanceError(f"cannot assign to field '{name}'")

        def __delattr__(self: Any, name: str) -> None:
            raise _FrozenInstanceError(f"cannot delete field '{name}'")

        methods["__setattr__"] = __setattr__
        methods["__delattr__"] = __delattr__
    for attr, value in methods.items():
        setattr(cls, attr, value)
    return cls


def _dataclass(cls: type[Any] | None = None, /, *, eq: bool = True, frozen: bool = False) -> Any:
    def wrap(c: type[Any]) -> type[Any]:
        return _process(c, eq, frozen)

    return wrap if cls is None else wrap(cls)


if TYPE_CHECKING:
    from dataclasses import FrozenInstanceError, asdict, dataclass, field, fields, replace
else:
    FrozenInstanceError = _FrozenInstanceError
    asdict, dataclass, field, fields, replace = _asdict, _dataclass, _field, _fields, _replace
