"""A property computed once per object without a lock: for the contexts a call builds and only
that call's thread reads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

T = TypeVar("T")


class call_cached(Generic[T]):  # lower case: it is used as a decorator, like cached_property
    """Like functools.cached_property, without its lock.

    Python 3.11's cached_property takes one lock per property for every object of the class: two
    threads of a worker computing the same property of two different calls' contexts wait for each
    other. A context belongs to one call and one thread, so no lock is needed; the value is stored
    in the object's __dict__, which answers every later read.
    """

    def __init__(self, compute: Callable[[Any], T]) -> None:
        self.compute = compute
        self.__doc__ = compute.__doc__
        self.name = compute.__name__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> call_cached[T]: ...

    @overload
    def __get__(self, instance: object, owner: type | None = None) -> T: ...

    def __get__(self, instance: object | None, owner: type | None = None) -> T | call_cached[T]:
        if instance is None:
            return self
        value = self.compute(instance)
        instance.__dict__[self.name] = value
        return value
