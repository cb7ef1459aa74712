"""quick_frozen keeps a frozen dataclass's behaviour while building it faster, and refuses classes
whose constructor it could not rebuild exactly."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field

import pytest

from hooks.facts.model import LabResult
from hooks.quick_frozen import quick_frozen


def declared() -> type:
    """A new frozen dataclass of the shape results have, as a plain dataclasses class."""

    @dataclass(frozen=True)
    class Result:
        kind: str
        value: float
        note: str = ""
        tags: tuple[str, ...] = ()

    return Result


Plain = declared()
Quick = quick_frozen(declared())


def test_behaves_as_the_plain_frozen_dataclass():
    for args, kwargs in [(("creatinine", 1.2), {}), (("egfr",), {"value": 60.0, "tags": ("a",)})]:
        plain, quick = Plain(*args, **kwargs), Quick(*args, **kwargs)
        assert dataclasses.astuple(plain) == dataclasses.astuple(quick)
        assert repr(quick) == repr(plain)
        assert quick == Quick(*args, **kwargs) and hash(quick) == hash(Quick(*args, **kwargs))
        assert quick != Quick("other", 0.0)
        assert dataclasses.replace(quick, note="n") == Quick(*args, **{**kwargs, "note": "n"})
        assert copy.deepcopy(quick) == quick
        with pytest.raises(dataclasses.FrozenInstanceError):
            quick.value = 2.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        Quick("creatinine")  # type: ignore[call-arg]  # a required field stays required
    with pytest.raises(TypeError):
        Quick("creatinine", 1.0, unknown=1)  # type: ignore[call-arg]


def test_a_result_of_the_record_is_built_by_it():
    result = LabResult("creatinine", 1.0, "mg/dL", 88.4, "umol/L", None, "obs-1")  # type: ignore[arg-type]
    assert (result.comparator, result.loinc, result.note) == (None, None, "")
    assert LabResult.__init__.__qualname__ == "LabResult.__init__"


def test_refuses_what_it_cannot_rebuild():
    with pytest.raises(TypeError):

        @quick_frozen
        @dataclass
        class NotFrozen:
            a: int

    with pytest.raises(TypeError):

        @quick_frozen
        @dataclass(frozen=True)
        class WithFactory:
            a: list[int] = field(default_factory=list)

    with pytest.raises(TypeError):

        @quick_frozen
        @dataclass(frozen=True)
        class WithPostInit:
            a: int

            def __post_init__(self) -> None:
                pass

    with pytest.raises(TypeError):

        @quick_frozen
        @dataclass(frozen=True)
        class NotInInit:
            a: int
            b: int = field(default=0, init=False)
