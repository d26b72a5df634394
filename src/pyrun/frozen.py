"""Record classes that cost nothing to define: what @dataclass gives, for the modules a CLI command imports.

Every pyrun command is a fresh Python process, and `@dataclass` is paid at import: the dataclasses
module imports inspect (with ast, dis and tokenize), and each class has its methods written as
source and compiled (about 1 ms a class here; the CLI's hot paths define some 70). A subclass of
`Frozen` (what `@dataclass(frozen=True)` was) or of `Record` (`@dataclass`) declares its fields
the same way, with annotations, defaults and `field(default_factory=..., compare=..., repr=...)`,
and gets generic methods instead: __init__ (positional or keyword, defaults, __post_init__),
__repr__, __eq__ and, for Frozen, __hash__ and no assignment (dataclasses.FrozenInstanceError).

The dataclasses module still works on them: `__dataclass_fields__` is made on first use (by a
twin dataclass, so dataclasses is imported only then), so dataclasses.replace, fields, asdict and
is_dataclass behave as before. The hot paths use `replace` and `field_names` from here.
"""
from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, ClassVar, TypeVar
    _T = TypeVar("_T")

_MISSING = object()


class _Field:
    __slots__ = ("default", "default_factory", "compare", "repr")

    def __init__(self, default, default_factory, compare: bool, repr: bool):
        self.default, self.default_factory, self.compare, self.repr = default, default_factory, compare, repr


def field(*, default: Any = _MISSING, default_factory: Any = _MISSING, compare: bool = True, repr: bool = True) -> Any:
    """dataclasses.field's subset records use."""
    return _Field(default, default_factory, compare, repr)


class _DataclassFields:
    """`cls.__dataclass_fields__`: those of a dataclass with the same fields, made on first use."""

    def __get__(self, obj, cls):
        import dataclasses
        specs = []
        for name in cls._fields:
            kw: dict = {"compare": name in cls._compare, "repr": name in cls._repr}
            if name in cls._defaults:
                kw["default"] = cls._defaults[name]
            elif name in cls._factories:
                kw["default_factory"] = cls._factories[name]
            specs.append((name, cls._types[name], dataclasses.field(**kw)))
        twin = dataclasses.make_dataclass(cls.__name__, specs, frozen=cls._frozen)
        fields = twin.__dataclass_fields__
        type.__setattr__(cls, "__dataclass_fields__", fields)
        return fields


class Record:
    """A mutable record (see the module docstring)."""
    _frozen = False
    _fields: tuple[str, ...] = ()
    _field_set: frozenset[str] = frozenset()
    _types: dict[str, object] = {}
    _defaults: dict[str, object] = {}
    _factories: dict[str, object] = {}
    _compare: tuple[str, ...] = ()
    _repr: tuple[str, ...] = ()
    __dataclass_fields__: ClassVar[dict[str, Any]] = _DataclassFields()  # type: ignore[assignment]

    def __init_subclass__(cls, **kw) -> None:
        super().__init_subclass__(**kw)
        names = list(cls._fields)
        types, defaults, factories = dict(cls._types), dict(cls._defaults), dict(cls._factories)
        compare, shown = set(cls._compare), set(cls._repr)
        for name, annotation in cls.__dict__.get("__annotations__", {}).items():
            if str(annotation).startswith(("ClassVar", "typing.ClassVar")):
                continue
            if name not in types:
                names.append(name)
            types[name] = annotation
            value = cls.__dict__.get(name, _MISSING)
            opts = value if isinstance(value, _Field) else _Field(value, _MISSING, True, True)
            defaults.pop(name, None)
            factories.pop(name, None)
            if opts.default is not _MISSING:
                defaults[name] = opts.default
                type.__setattr__(cls, name, opts.default)
            elif opts.default_factory is not _MISSING:
                factories[name] = opts.default_factory
                if isinstance(value, _Field):
                    type.__delattr__(cls, name)
            (compare.add if opts.compare else compare.discard)(name)
            (shown.add if opts.repr else shown.discard)(name)
        cls._fields, cls._field_set, cls._types = tuple(names), frozenset(names), types
        cls._defaults, cls._factories = defaults, factories
        cls._compare = tuple(n for n in names if n in compare)
        cls._repr = tuple(n for n in names if n in shown)
        type.__setattr__(cls, "__dataclass_fields__", _DataclassFields())  # not a parent's, made for it
        own_hash = cls.__dict__.get("__hash__", _MISSING)
        if own_hash is _MISSING or (own_hash is None and "__eq__" in cls.__dict__):  # as dataclass decides
            type.__setattr__(cls, "__hash__", cls._hash if cls._frozen else None)

    def __init__(self, *args, **kwargs) -> None:
        cls = self.__class__
        d = self.__dict__
        if args:
            names = cls._fields
            if len(args) > len(names):
                raise TypeError(f"{cls.__name__}.__init__() takes {len(names) + 1} positional arguments "
                                f"but {len(args) + 1} were given")
            for name, value in zip(names, args):
                d[name] = value
            for name in kwargs:
                if name in d:
                    raise TypeError(f"{cls.__name__}.__init__() got multiple values for argument {name!r}")
        if not cls._field_set.issuperset(kwargs):
            name = next(k for k in kwargs if k not in cls._field_set)
            raise TypeError(f"{cls.__name__}.__init__() got an unexpected keyword argument {name!r}")
        d.update(kwargs)
        if len(d) < len(cls._fields):
            for name, value in cls._defaults.items():
                if name not in d:
                    d[name] = value
            for name, factory in cls._factories.items():
                if name not in d:
                    d[name] = factory()  # type: ignore[operator]
            if len(d) < len(cls._fields):
                name = next(n for n in cls._fields if n not in d)
                raise TypeError(f"{cls.__name__}.__init__() missing 1 required positional argument: {name!r}")
        post_init = getattr(self, "__post_init__", None)
        if post_init is not None:
            post_init()

    def __repr__(self) -> str:
        shown = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._repr)
        return f"{self.__class__.__qualname__}({shown})"

    def _hash(self) -> int:
        return hash(self._key())

    def _key(self) -> tuple:
        return tuple(getattr(self, n) for n in self._compare)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return self._key() == other._key()  # type: ignore[attr-defined]
        return NotImplemented


class Frozen(Record):
    """A frozen record (see the module docstring)."""
    _frozen = True

    def __setattr__(self, name: str, value: object) -> None:
        import dataclasses
        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        import dataclasses
        raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")


def replace(obj: _T, /, **changes: Any) -> _T:
    """dataclasses.replace for a record (and for a dataclass, which it hands to dataclasses)."""
    cls = obj.__class__
    if not isinstance(obj, Record):
        import dataclasses
        return dataclasses.replace(obj, **changes)
    for name in cls._fields:
        if name not in changes:
            changes[name] = obj.__dict__[name]
    return cls(**changes)


def as_dict(obj: Any) -> Any:
    """dataclasses.asdict for a record: its fields as a dict, records, tuples, lists and dicts in them
    converted the same way (other values as they are)."""
    if isinstance(obj, Record):
        return {name: as_dict(obj.__dict__[name]) for name in obj._fields}
    if isinstance(obj, (tuple, list)):
        return type(obj)(as_dict(v) for v in obj)
    if isinstance(obj, dict):
        return {as_dict(k): as_dict(v) for k, v in obj.items()}
    return obj


def field_names(cls_or_obj: Any) -> tuple[str, ...]:
    """The names of a record's fields, in order (dataclasses.fields without the Field objects)."""
    return cls_or_obj._fields
