"""Named plug-ins (attacks, checkers, accountants) are registered, not dispatched by if/elif."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from dpaudit.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name → object map whose lookup error lists every registered name.

    >>> ATTACKS: Registry[type] = Registry("attack")
    >>> @ATTACKS.register("loss")
    ... class LossAttack: ...
    >>> ATTACKS.get("loss").__name__
    'LossAttack'
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} '{name}' is already registered")
            self._items[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items))
            raise ConfigError(f"unknown {self.kind} '{name}'; registered: {known}") from None

    def names(self) -> list[str]:
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
