"""Compiles the project's CDS Hooks JSON Schemas once and validates documents against them."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any, NoReturn

import fastjsonschema

__all__ = ["MAX_MESSAGE_LENGTH", "SchemaValidators", "SchemaViolation"]

MAX_MESSAGE_LENGTH = 200

_SCHEMA_SUFFIX = ".schema.json"
_DRAFT_07 = "http://json-schema.org/draft-07/schema#"
# Property names come from the client, so cap what we echo of them.
_MAX_NAME_LENGTH = 40

_TYPE_WORDS = {
    "string": "a string",
    "object": "an object",
    "array": "an array",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "null": "null",
}


def _refuse_remote_ref(uri: str) -> NoReturn:
    raise fastjsonschema.JsonSchemaDefinitionException(f"remote $ref is not allowed: {uri}")


# fastjsonschema fetches unknown $ref URIs with urllib; the schemas are self-contained,
# so a remote ref is a bug and must not turn into network I/O at start-up.
_NO_REMOTE_REFS: Mapping[str, Callable[[str], Any]] = {
    scheme: _refuse_remote_ref for scheme in ("http", "https", "ftp", "file")
}


class SchemaViolation(ValueError):
    """A document does not match a schema; the message never contains the offending value."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.message = message
        self.path = path

    def __repr__(self) -> str:
        return f"SchemaViolation(message={self.message!r}, path={self.path!r})"


class SchemaValidators:
    """Every `*.schema.json` in the package's schema folder, compiled once, by file stem."""

    def __init__(self, package: str = "service.http", directory: str = "schemas") -> None:
        self._validators: dict[str, Callable[[Any], Any]] = {}
        folder = resources.files(package).joinpath(directory)
        for entry in sorted(folder.iterdir(), key=lambda item: item.name):
            if not entry.name.endswith(_SCHEMA_SUFFIX):
                continue
            name = entry.name[: -len(_SCHEMA_SUFFIX)]
            schema = json.loads(entry.read_text(encoding="utf-8"))
            # Without $schema, fastjsonschema silently applies 2019-09 rules, which differ
            # from the draft-07 semantics the tests check the schemas against.
            if not isinstance(schema, dict) or schema.get("$schema") != _DRAFT_07:
                raise ValueError(f"schema {entry.name} must declare $schema {_DRAFT_07}")
            self._validators[name] = fastjsonschema.compile(
                schema,
                handlers=_NO_REMOTE_REFS,
                # Validation must never rewrite the caller's document.
                use_default=False,
                use_formats=False,
            )
        if not self._validators:
            raise ValueError(f"no *{_SCHEMA_SUFFIX} files found in {package}/{directory}")

    @property
    def names(self) -> tuple[str, ...]:
        """Loaded schema names, e.g. ``cds-request`` or ``order-sign-context``."""
        return tuple(self._validators)

    def validate(self, name: str, document: Any) -> None:
        """Raise SchemaViolation at the first problem; KeyError if no schema is called `name`."""
        try:
            validator = self._validators[name]
        except KeyError:
            raise KeyError(f"no schema named {name!r}") from None
        try:
            validator(document)
        except fastjsonschema.JsonSchemaValueException as exc:
            message, path = _describe(exc)
            # The original exception holds the offending value (possibly PHI); keep it
            # out of tracebacks that may end up in logs.
            raise SchemaViolation(message, path) from None


def _describe(exc: fastjsonschema.JsonSchemaValueException) -> tuple[str, str]:
    """Build (message, path) from the rule that failed, never from exc.message or exc.value."""
    name = exc.name or "data"
    rule = exc.rule
    definition = exc.definition if isinstance(exc.definition, dict) else {}
    rule_value = definition.get(rule) if rule else None
    value = exc.value
    path = name

    if rule == "required":
        missing = _first_missing(rule_value, value)
        path = _child(name, missing)
        message = f"{path} is required"
    elif rule == "dependencies":
        trigger, missing = _first_missing_dependency(rule_value, value)
        path = _child(name, missing)
        message = f"{path} is required when {_clip_name(trigger)} is present"
    elif rule == "additionalProperties":
        unexpected = _first_unexpected(definition, value)
        path = _child(name, unexpected)
        message = f"{path} is not allowed"
    elif rule is None and exc.definition is False:
        message = f"{name} is not allowed here"
    elif rule == "type":
        types = rule_value if isinstance(rule_value, list) else [rule_value]
        message = f"{name} must be " + " or ".join(
            _TYPE_WORDS.get(t, t) if isinstance(t, str) else str(t) for t in types
        )
    elif rule == "enum":
        options = rule_value if isinstance(rule_value, list) else [rule_value]  # draft-07: a list
        message = f"{name} must be one of " + ", ".join(str(option) for option in options)
    elif rule == "const":
        message = f"{name} must be {rule_value}"
    elif rule == "pattern":
        message = _pattern_message(name, definition, rule_value)
    elif rule in ("minLength", "minItems", "minProperties") and rule_value == 1:
        message = f"{name} must not be empty"
    elif rule in ("minLength", "maxLength"):
        bound = "at least" if rule == "minLength" else "at most"
        message = f"{name} must be {bound} {rule_value} characters long"
    elif rule in ("minItems", "maxItems"):
        bound = "at least" if rule == "minItems" else "at most"
        message = f"{name} must have {bound} {rule_value} items"
    elif rule in ("minProperties", "maxProperties"):
        bound = "at least" if rule == "minProperties" else "at most"
        message = f"{name} must have {bound} {rule_value} members"
    else:
        message = f"{name} does not satisfy {rule or 'the schema'}"
    return _clip(message), _clip(path)


def _pattern_message(name: str, definition: Mapping[str, Any], pattern: Any) -> str:
    # Schemas put a short noun phrase in "title" next to each pattern so that the
    # message explains the format instead of quoting a long regular expression.
    title = definition.get("title")
    if isinstance(title, str) and title:
        return f"{name} is not a valid {title}"
    message = f"{name} must match pattern {pattern}"
    if len(message) <= MAX_MESSAGE_LENGTH:
        return message
    return f"{name} does not have the required format"


def _first_missing(required: Any, value: Any) -> str | None:
    if isinstance(required, list) and isinstance(value, dict):
        for key in required:
            if key not in value:
                return key
    return None


def _first_missing_dependency(dependencies: Any, value: Any) -> tuple[str, str | None]:
    if isinstance(dependencies, dict) and isinstance(value, dict):
        for trigger, needed in dependencies.items():
            if trigger in value and isinstance(needed, list):
                for key in needed:
                    if key not in value:
                        return trigger, key
    return "a related member", None


def _first_unexpected(definition: Mapping[str, Any], value: Any) -> str | None:
    if not isinstance(value, dict):
        return None
    known = definition.get("properties", {})
    patterns = [re.compile(p) for p in definition.get("patternProperties", {})]
    for key in value:
        if key not in known and not any(p.search(key) for p in patterns):
            return _clip_name(key)
    return None


def _child(name: str, key: str | None) -> str:
    return f"{name}.{key}" if key else name


def _clip_name(key: str) -> str:
    return key if len(key) <= _MAX_NAME_LENGTH else key[: _MAX_NAME_LENGTH - 1] + "…"


def _clip(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE_LENGTH else text[: MAX_MESSAGE_LENGTH - 1] + "…"
