"""The knowledge file's JSON Schema (bone-agents.schema.json), checked at load by a small draft-07
walker."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import lru_cache
from importlib import resources
from typing import Any

from hooks.knowledge.errors import Violation, path_text

SCHEMA_FILE = "bone-agents.schema.json"


@lru_cache(maxsize=1)
def knowledge_schema() -> KnowledgeSchema:
    """The bundled schema, read and prepared once per process."""
    return KnowledgeSchema(
        json.loads(resources.files(__package__).joinpath(SCHEMA_FILE).read_bytes())
    )


def _is_type(value: Any, name: str) -> bool:
    if name == "number":
        return _is_number(value)
    if name == "integer":
        return _is_number(value) and (isinstance(value, int) or value.is_integer())
    return isinstance(value, _JSON_TYPES[name])


def _same(a: Any, b: Any) -> bool:
    """JSON equality: true is not 1."""
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _show(value: Any) -> str:
    """A value as jsonschema shows it (repr), cut to keep the message on a short line."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


_JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


class KnowledgeSchema:
    """A draft-07 JSON Schema checked by walking it, with jsonschema's messages (an unexpected key
    is always reported as "Additional properties are not allowed").

    It covers the keywords the knowledge schema uses and refuses any other, so an edit to the schema
    cannot be silently ignored. (fastjsonschema compiles this schema to about 1 MB of Python, some
    250 ms per process before the first check; the walk takes about 7 ms.) The tests check it agrees
    with the jsonschema package.
    """

    ANNOTATIONS = frozenset(
        {"$schema", "$id", "$comment", "title", "description", "definitions", "default", "examples"}
    )

    def __init__(self, schema: dict[str, Any]) -> None:
        if schema.get("$schema") != "http://json-schema.org/draft-07/schema#":
            raise ValueError(
                "the knowledge schema must declare $schema http://json-schema.org/draft-07/schema#"
            )
        self.schema = schema
        self._regex: dict[str, re.Pattern[str]] = {}
        self._prepare(schema, "#")

    def first_error(self, instance: Any) -> tuple[str, str] | None:
        """(path, message) of the violation that comes first in the document, or None when it
        conforms."""
        errors: list[Violation] = []
        self._check(instance, self.schema, (), errors)
        if not errors:
            return None
        path, message = min(errors, key=lambda error: _document_order(instance, error[0]))
        return path_text(path), message

    def errors(self, instance: Any) -> list[tuple[str, str]]:
        """Every violation as (path, message), in document order."""
        errors: list[Violation] = []
        self._check(instance, self.schema, (), errors)
        errors.sort(key=lambda error: _document_order(instance, error[0]))
        return [(path_text(path), message) for path, message in errors]

    # The walk. Each keyword applies to its own type only, as in JSON Schema.

    def _check(
        self, value: Any, schema: Any, path: tuple[Any, ...], errors: list[Violation]
    ) -> None:
        if schema is True:
            return
        if schema is False:
            errors.append((path, f"False schema does not allow {_show(value)}"))
            return
        if "$ref" in schema:  # draft-07: $ref replaces its sibling keywords
            self._check(value, self._resolve(schema["$ref"]), path, errors)
            return
        for keyword, argument in schema.items():
            check = self._CHECKS.get(keyword)
            if check is not None:
                check(self, value, argument, schema, path, errors)

    def _valid(self, value: Any, schema: Any, path: tuple[Any, ...]) -> bool:
        errors: list[Violation] = []
        self._check(value, schema, path, errors)
        return not errors

    def _type(self, value, argument, schema, path, errors) -> None:
        types = argument if isinstance(argument, list) else [argument]
        if not any(_is_type(value, name) for name in types):
            errors.append((path, f"{_show(value)} is not of type {', '.join(map(repr, types))}"))

    def _enum(self, value, argument, schema, path, errors) -> None:
        if not any(_same(value, option) for option in argument):
            errors.append((path, f"{_show(value)} is not one of {argument!r}"))

    def _pattern(self, value, argument, schema, path, errors) -> None:
        if isinstance(value, str) and not self._regex[argument].search(value):
            errors.append((path, f"{_show(value)} does not match {argument!r}"))

    def _min_length(self, value, argument, schema, path, errors) -> None:
        if isinstance(value, str) and len(value) < argument:
            errors.append(
                (
                    path,
                    f"{_show(value)} {'should be non-empty' if argument == 1 else 'is too short'}",
                )
            )

    def _minimum(self, value, argument, schema, path, errors) -> None:
        if _is_number(value) and value < argument:
            errors.append((path, f"{value!r} is less than the minimum of {argument!r}"))

    def _exclusive_minimum(self, value, argument, schema, path, errors) -> None:
        if _is_number(value) and value <= argument:
            errors.append((path, f"{value!r} is less than or equal to the minimum of {argument!r}"))

    def _maximum(self, value, argument, schema, path, errors) -> None:
        if _is_number(value) and value > argument:
            errors.append((path, f"{value!r} is greater than the maximum of {argument!r}"))

    def _min_items(self, value, argument, schema, path, errors) -> None:
        if isinstance(value, list) and len(value) < argument:
            errors.append(
                (
                    path,
                    f"{_show(value)} {'should be non-empty' if argument == 1 else 'is too short'}",
                )
            )

    def _max_items(self, value, argument, schema, path, errors) -> None:
        if isinstance(value, list) and len(value) > argument:
            errors.append((path, f"{_show(value)} is too long"))

    def _items(self, value, argument, schema, path, errors) -> None:
        if not isinstance(value, list):
            return
        if isinstance(argument, list):
            for index, (item, item_schema) in enumerate(zip(value, argument, strict=False)):
                self._check(item, item_schema, (*path, index), errors)
            if schema.get("additionalItems") is False and len(value) > len(argument):
                extra = ", ".join(map(_show, value[len(argument) :]))
                verb = "was" if len(value) == len(argument) + 1 else "were"
                errors.append(
                    (path, f"Additional items are not allowed ({extra} {verb} unexpected)")
                )
        else:
            for index, item in enumerate(value):
                self._check(item, argument, (*path, index), errors)

    def _required(self, value, argument, schema, path, errors) -> None:
        if isinstance(value, dict):
            errors.extend(
                (path, f"{key!r} is a required property") for key in argument if key not in value
            )

    def _properties(self, value, argument, schema, path, errors) -> None:
        if isinstance(value, dict):
            for key, sub in argument.items():
                if key in value:
                    self._check(value[key], sub, (*path, key), errors)

    def _pattern_properties(self, value, argument, schema, path, errors) -> None:
        if isinstance(value, dict):
            for pattern, sub in argument.items():
                regex = self._regex[pattern]
                for key, item in value.items():
                    if regex.search(key):
                        self._check(item, sub, (*path, key), errors)

    def _additional_properties(self, value, argument, schema, path, errors) -> None:
        if not isinstance(value, dict):
            return
        known = schema.get("properties", {})
        patterns = [self._regex[p] for p in schema.get("patternProperties", {})]
        extra = [
            key for key in value if key not in known and not any(p.search(key) for p in patterns)
        ]
        if not extra:
            return
        if argument is False:
            verb = "was" if len(extra) == 1 else "were"
            errors.append(
                (
                    path,
                    (
                        f"Additional properties are not allowed ({', '.join(map(repr, extra))}"
                        f" {verb} unexpected)"
                    ),
                )
            )
        else:
            for key in extra:
                self._check(value[key], argument, (*path, key), errors)

    def _property_names(self, value, argument, schema, path, errors) -> None:
        if isinstance(value, dict):
            for key in value:
                self._check(key, argument, path, errors)

    def _dependencies(self, value, argument, schema, path, errors) -> None:
        if not isinstance(value, dict):
            return
        for key, needed in argument.items():
            if key not in value:
                continue
            if isinstance(needed, list):
                errors.extend(
                    (path, f"{other!r} is a dependency of {key!r}")
                    for other in needed
                    if other not in value
                )
            else:
                self._check(value, needed, path, errors)

    def _all_of(self, value, argument, schema, path, errors) -> None:
        for sub in argument:
            self._check(value, sub, path, errors)

    def _any_of(self, value, argument, schema, path, errors) -> None:
        if not any(self._valid(value, sub, path) for sub in argument):
            errors.append((path, f"{_show(value)} is not valid under any of the given schemas"))

    def _one_of(self, value, argument, schema, path, errors) -> None:
        matches = sum(self._valid(value, sub, path) for sub in argument)
        if matches == 0:
            errors.append((path, f"{_show(value)} is not valid under any of the given schemas"))
        elif matches > 1:
            errors.append(
                (path, f"{_show(value)} is valid under more than one of the given schemas")
            )

    def _not(self, value, argument, schema, path, errors) -> None:
        if self._valid(value, argument, path):
            errors.append((path, f"{_show(value)} should not be valid under {argument!r}"))

    _CHECKS: dict[str, Callable[..., None] | None] = {
        "type": _type,
        "enum": _enum,
        "pattern": _pattern,
        "minLength": _min_length,
        "minimum": _minimum,
        "exclusiveMinimum": _exclusive_minimum,
        "maximum": _maximum,
        "minItems": _min_items,
        "maxItems": _max_items,
        "items": _items,
        "additionalItems": None,
        "required": _required,
        "properties": _properties,
        "patternProperties": _pattern_properties,
        "additionalProperties": _additional_properties,
        "propertyNames": _property_names,
        "dependencies": _dependencies,
        "allOf": _all_of,
        "anyOf": _any_of,
        "oneOf": _one_of,
        "not": _not,
    }

    # Preparation: every keyword known, every pattern compiled, every $ref resolvable.

    def _resolve(self, ref: str) -> Any:
        if not ref.startswith("#/"):
            raise ValueError(f"the knowledge schema may only use local $ref, not {ref!r}")
        node: Any = self.schema
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def _compile(self, pattern: str) -> None:
        if pattern not in self._regex:
            self._regex[pattern] = re.compile(pattern)

    def _prepare(self, schema: Any, where: str) -> None:
        if isinstance(schema, bool):
            return
        if not isinstance(schema, dict):
            raise ValueError(f"knowledge schema {where}: a schema must be an object or a boolean")
        unknown = set(schema) - set(self._CHECKS) - self.ANNOTATIONS - {"$ref"}
        if unknown:
            raise ValueError(
                f"knowledge schema {where}: keyword {sorted(unknown)[0]!r} is not supported"
            )
        if "$ref" in schema:
            try:
                self._resolve(schema["$ref"])
            except (KeyError, TypeError):
                raise ValueError(
                    f"knowledge schema {where}: $ref {schema['$ref']!r} does not resolve"
                ) from None
        if "pattern" in schema:
            self._compile(schema["pattern"])
        for pattern in schema.get("patternProperties", {}):
            self._compile(pattern)
        for keyword in ("properties", "patternProperties", "definitions"):
            for key, sub in schema.get(keyword, {}).items():
                self._prepare(sub, f"{where}/{keyword}/{key}")
        for keyword in ("additionalProperties", "additionalItems", "propertyNames", "not"):
            if keyword in schema:
                self._prepare(schema[keyword], f"{where}/{keyword}")
        for keyword in ("allOf", "anyOf", "oneOf"):
            for index, sub in enumerate(schema.get(keyword, [])):
                self._prepare(sub, f"{where}/{keyword}/{index}")
        items = schema.get("items")
        for index, sub in enumerate(
            items if isinstance(items, list) else [items] if items is not None else []
        ):
            self._prepare(sub, f"{where}/items" + (f"/{index}" if isinstance(items, list) else ""))
        for key, needed in schema.get("dependencies", {}).items():
            if not isinstance(needed, list):
                self._prepare(needed, f"{where}/dependencies/{key}")


def _document_order(instance: Any, path: tuple[Any, ...]) -> tuple[int, ...]:
    """Where a path lies in the document: keys by their position in the file, items by index (a
    parent before its children), so the error reported is the first one a reader meets."""
    order = []
    for part in path:
        if isinstance(instance, dict) and part in instance:
            order.append(list(instance).index(part))
            instance = instance[part]
        elif isinstance(instance, list) and isinstance(part, int) and part < len(instance):
            order.append(part)
            instance = instance[part]
        else:
            break
    return tuple(order)
