"""KnowledgeError, the one-line refusal of a knowledge file, and how it names a place in the
document."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any


class KnowledgeError(ValueError):
    """The knowledge file cannot be used.

    str() is one line: '<file>: at <path>: <problem>' for a schema or cross-reference violation
    ('<file>: <problem>' when the file cannot be read or parsed); `where` and `problem` hold the two
    parts.
    """

    def __init__(self, where: str, problem: str) -> None:
        self.where = where
        self.problem = problem.replace("\r", " ").replace("\n", " ")
        super().__init__(f"{where}: {self.problem}")


def path_text(path: Iterable[str | int]) -> str:
    """('products', 12, 'strength_mg') -> 'products[12].strength_mg'; keys that are not plain names
    are quoted."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif PLAIN_KEY.fullmatch(part):
            text += f".{part}" if text else part
        else:
            text += f"[{part!r}]"
    return text or "top level"


PLAIN_KEY = re.compile(r"[A-Za-z0-9_$-]+")
Violation = tuple[tuple[Any, ...], str]
