"""A faster constructor for the frozen dataclasses a call builds by the hundred (results, orders,
medications): the same class, filled in one step."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def quick_frozen(cls: type[T]) -> type[T]:
    """Give a frozen dataclass an `__init__` that fills the instance dict at once.

    The `__init__` dataclasses generates for a frozen class sets every field through
    `object.__setattr__`, about twice the cost of the rest of building a result; a long history
    builds thousands. Signature, defaults, equality, hashing, repr, `replace()` and immutability
    stay those of the dataclass. Classes this cannot rebuild exactly (default factories,
    `__post_init__`, `init=False` or keyword-only fields, slots) are refused at import.
    """
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen:
        raise TypeError(f"{cls.__name__}: quick_frozen takes a frozen dataclass")
    if "__slots__" in vars(cls) or hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__}: quick_frozen cannot keep slots or __post_init__")
    namespace: dict[str, Any] = {}
    signature, filled = [], []
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        if not field.init or field.kw_only or field.default_factory is not dataclasses.MISSING:
            raise TypeError(f"{cls.__name__}.{field.name}: quick_frozen takes plain fields only")
        if field.default is dataclasses.MISSING:
            signature.append(field.name)
        else:
            namespace[f"_default_{field.name}"] = field.default
            signature.append(f"{field.name}=_default_{field.name}")
        filled.append(f"{field.name}={field.name}")
    source = (
        f"def __init__(self, {', '.join(signature)}):\n"
        f"    self.__dict__.update({', '.join(filled)})\n"
    )
    # The source is built from the class's own field names, as dataclasses builds its __init__.
    exec(source, namespace)  # noqa: S102
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__doc__ = f"Build a {cls.__name__} (fields as declared)."
    setattr(cls, "__init__", init)  # noqa: B010 (mypy refuses assigning to a method)
    return cls
