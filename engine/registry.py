"""A small registry of named, documented, typed components.

Pruning criteria, granularities and schedules each have one. A component is one small class with
a ``name``, a ``label``, a ``description`` (shown as the GUI tooltip and in ``--help``) and typed
``options``; the GUI builds its controls from those, and recipes validate against them, so adding a
method touches one file.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Iterator, Optional, TypeVar


class OptionError(ValueError):
    pass


@dataclass(frozen=True)
class Option:
    """One typed parameter of a component. ``kind`` is float, int, str or bool."""
    name: str
    kind: type
    default: Any
    help: str
    choices: Optional[tuple[Any, ...]] = None
    minimum: Optional[float] = None
    maximum: Optional[float] = None

    def coerce(self, value: Any, owner: str) -> Any:
        where = f"{owner} option '{self.name}'"
        if self.kind is bool:
            if not isinstance(value, bool):
                raise OptionError(f"{where} must be true or false, not {value!r}")
        elif self.kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise OptionError(f"{where} must be a whole number, not {value!r}")
        elif self.kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise OptionError(f"{where} must be a number, not {value!r}")
            value = float(value)
        elif self.kind is str and not isinstance(value, str):
            raise OptionError(f"{where} must be text, not {value!r}")
        if self.choices is not None and value not in self.choices:
            raise OptionError(f"{where} must be one of {', '.join(map(str, self.choices))}, "
                              f"not {value!r}")
        if self.minimum is not None and value < self.minimum:
            raise OptionError(f"{where} must be >= {self.minimum}, not {value}")
        if self.maximum is not None and value > self.maximum:
            raise OptionError(f"{where} must be <= {self.maximum}, not {value}")
        return value


class Component:
    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    description: ClassVar[str] = ""
    options: ClassVar[tuple[Option, ...]] = ()

    def __init__(self, **values: Any) -> None:
        self.values = {o.name: o.default for o in self.options}
        self.values.update(values)

    def __getitem__(self, key: str) -> Any:
        return self.values[key]


C = TypeVar("C", bound=Component)


class Registry(Generic[C]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, type[C]] = {}

    def register(self, cls: type[C]) -> type[C]:
        if not cls.name:
            raise ValueError(f"{cls.__name__} needs a name to be registered as a {self.kind}")
        if cls.name in self._items and self._items[cls.name] is not cls:
            raise ValueError(f"a {self.kind} named '{cls.name}' is already registered")
        self._items[cls.name] = cls
        return cls

    def unregister(self, name: str) -> None:
        self._items.pop(name, None)

    def get(self, name: str) -> type[C]:
        try:
            return self._items[name]
        except KeyError:
            raise OptionError(f"unknown {self.kind} '{name}'; choose one of "
                              f"{', '.join(self.names())}") from None

    def create(self, name: str, values: Optional[dict[str, Any]] = None) -> C:
        """Builds the component, keeping only the options it declares (a recipe's ``options`` dict
        is shared by the criterion and the granularity) and validating each."""
        cls = self.get(name)
        known = {o.name: o for o in cls.options}
        picked = {k: known[k].coerce(v, f"{self.kind} '{name}'")
                  for k, v in (values or {}).items() if k in known}
        return cls(**picked)

    def names(self) -> list[str]:
        return list(self._items)

    def __iter__(self) -> Iterator[type[C]]:
        return iter(self._items.values())

    def __contains__(self, name: str) -> bool:
        return name in self._items
