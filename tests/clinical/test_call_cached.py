"""call_cached computes a context's property once per object, and objects do not share values."""

from __future__ import annotations

from hooks.call_cached import call_cached
from hooks.rules.context import OrderContext


class Counted:
    def __init__(self, base: int) -> None:
        self.base = base
        self.computed = 0

    @call_cached
    def doubled(self) -> int:
        """Twice the base."""
        self.computed += 1
        return self.base * 2


def test_computed_once_per_object():
    first, second = Counted(2), Counted(5)
    assert (first.doubled, first.doubled, second.doubled) == (4, 4, 10)
    assert (first.computed, second.computed) == (1, 1)


def test_the_class_attribute_is_the_descriptor_with_its_doc():
    assert isinstance(Counted.__dict__["doubled"], call_cached)
    assert Counted.doubled.__doc__ == "Twice the base."
    assert isinstance(OrderContext.__dict__["current_renal"], call_cached)
