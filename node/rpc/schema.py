"""A small, strict JSON-Schema subset for RPC parameters: checked at registration, enforced per call.

Only the keywords below are understood; a schema using any other
(validating) keyword is refused when the method is registered, so a rule is
never silently ignored.

- ``type``: a name or a list of names among ``null``, ``boolean``,
  ``integer``, ``number``, ``string``, ``array``, ``object``. Strict like
  JSON itself: ``true`` is a boolean, never an integer; ``1.0`` is a number,
  not an integer; ``number`` accepts integers.
- ``enum``, ``const``
- ``minimum``, ``maximum``, ``exclusiveMinimum``, ``exclusiveMaximum`` (numbers)
- ``minLength``, ``maxLength``, ``pattern`` (strings; ``pattern`` is searched,
  as in JSON Schema, so anchor it with ``^...$``)
- ``items``, ``minItems``, ``maxItems`` (arrays)
- ``properties``, ``required``, ``additionalProperties`` (objects)
- ``anyOf``
- annotations, kept for documentation only: ``title``, ``description``,
  ``default``, ``examples``, ``format``, ``$comment``, ``deprecated``.

``validate_value`` raises ``SchemaViolation`` whose message names the place
(``"height"``, ``"filter.address"``, ``"hashes[2]"``), what was expected and
what was found.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

JSON_TYPES = ("null", "boolean", "integer", "number", "string", "array", "object")

_VALIDATING = {
    "type", "enum", "const", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "minLength", "maxLength", "pattern", "items", "minItems", "maxItems",
    "properties", "required", "additionalProperties", "anyOf",
}
_ANNOTATIONS = {"title", "description", "default", "examples", "format", "$comment", "deprecated"}


class SchemaViolation(ValueError):
    """A value does not satisfy its schema; ``str()`` is the message for the caller."""

    def __init__(self, path: str, expected: str, found: str) -> None:
        self.path = path
        self.expected = expected
        self.found = found
        super().__init__(f'"{path}": expected {expected}, got {found}')


def json_type_of(value: Any) -> str:
    """The JSON type name of a decoded JSON value (``bool`` is ``boolean``, not ``integer``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def preview(value: Any, limit: int = 40) -> str:
    """A short JSON rendering of ``value`` for error messages."""
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=repr)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_found(value: Any) -> str:
    kind = json_type_of(value)
    if kind in ("array", "object"):
        return kind
    return f"{kind} {preview(value)}"


def _types_of(schema: Mapping[str, Any]) -> list[str]:
    t = schema.get("type")
    if t is None:
        return []
    return [t] if isinstance(t, str) else list(t)


_PLURALS = {"null": "nulls", "boolean": "booleans", "integer": "integers", "number": "numbers",
            "string": "strings", "array": "arrays", "object": "objects"}
_NUMBER_KEYS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
_STRING_KEYS = ("minLength", "maxLength", "pattern")
_ARRAY_KEYS = ("items", "minItems", "maxItems")
_OBJECT_KEYS = ("properties",)


def _count(n: int, noun: str, plural: str) -> str:
    """``1 character``, ``2 characters``."""
    return f"{n} {noun if n == 1 else plural}"


def _span(schema: Mapping[str, Any], low_key: str, high_key: str) -> tuple[str, bool]:
    """``("1 to 3", plural)``, ``("at least 1", singular)``, ...; ``("", True)`` without bounds.

    A lower bound of 0 says nothing and is left out.
    """
    low, high = schema.get(low_key), schema.get(high_key)
    if low == 0:
        low = None
    if low is not None and high is not None:
        if low == high:
            return f"exactly {low}", low != 1
        return f"{low} to {high}", True
    if low is not None:
        return f"at least {low}", low != 1
    if high is not None:
        return f"at most {high}", high != 1
    return "", True


def _range(schema: Mapping[str, Any]) -> str:
    """``from 0 to 2``, ``of at least 0``, ``greater than 0 and at most 5``; ``""`` without bounds."""
    low, high = schema.get("minimum"), schema.get("maximum")
    xlow, xhigh = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if low is not None and high is not None and xlow is None and xhigh is None:
        return f"equal to {low}" if low == high else f"from {low} to {high}"
    parts = []
    if low is not None:
        parts.append(f"at least {low}")
    if xlow is not None:
        parts.append(f"greater than {xlow}")
    if high is not None:
        parts.append(f"at most {high}")
    if xhigh is not None:
        parts.append(f"less than {xhigh}")
    text = " and ".join(parts)
    return "of " + text if text.startswith("at ") else text


def _typed_only(schema: Mapping[str, Any]) -> bool:
    """Whether ``schema``'s phrase starts with its type name(s), so it can be put in the plural."""
    return bool(_types_of(schema)) and not any(k in schema for k in ("const", "enum", "anyOf"))


def _describe_array(schema: Mapping[str, Any], head: str) -> str:
    items = schema.get("items")
    count, plural = _span(schema, "minItems", "maxItems")
    tail = ""
    if items and _typed_only(items):
        noun = _describe(items, plural=plural)
    else:
        noun = "items" if plural else "item"
        if items and describe_schema(items) != "any value":
            tail = f", each {describe_schema(items)}"
    if count:
        return f"{head} of {count} {noun}{tail}"
    if items and _typed_only(items):
        return f"{head} of {noun}"
    return f"{head} of items{tail}" if tail else head


def _describe_type(kind: str, schema: Mapping[str, Any], plural: bool) -> str:
    """One JSON type with the keywords of ``schema`` that apply to it."""
    head = _PLURALS[kind] if plural else kind
    if kind in ("integer", "number"):
        bounds = _range(schema)
        return f"{head} {bounds}" if bounds else head
    if kind == "string":
        text = head
        count, many = _span(schema, "minLength", "maxLength")
        if count:
            text += f" of {count} {'characters' if many else 'character'}"
        if "pattern" in schema:
            text += f" matching {schema['pattern']}"
        return text
    if kind == "array":
        return _describe_array(schema, head)
    if kind == "object":
        fields = list(schema.get("properties", {}))
        if fields:
            return f"{head} with {'field' if len(fields) == 1 else 'fields'} {', '.join(fields)}"
        return head
    return head


def _describe(schema: Mapping[str, Any], plural: bool = False) -> str:
    if "const" in schema:
        return preview(schema["const"])
    if "enum" in schema:
        values = [preview(v) for v in schema["enum"]]
        if not values:
            return "no value (empty enum)"
        return values[0] if len(values) == 1 else "one of " + ", ".join(values)
    if "anyOf" in schema:
        return " or ".join(_describe(s, plural) for s in schema["anyOf"])
    types = _types_of(schema)
    if types:
        return " or ".join(_describe_type(t, schema, plural) for t in types)
    # No type: each keyword still constrains the values of its own type.
    text = "values" if plural else "any value"
    extras = []
    for kind, keys in (("string", _STRING_KEYS), ("number", _NUMBER_KEYS),
                       ("array", _ARRAY_KEYS), ("object", _OBJECT_KEYS)):
        if any(k in schema for k in keys):
            phrase = _describe_type(kind, schema, plural=True)
            if phrase != _PLURALS[kind]:
                extras.append(phrase)
    return text + "; " + ", ".join(extras) if extras else text


def describe_schema(schema: Mapping[str, Any]) -> str:
    """A short phrase for what ``schema`` accepts, for ``help`` and error messages.

    For example ``integer from 0 to 2``, ``string of 1 to 128 characters``,
    ``one of "a", "b"``, ``array of strings``, ``string or null``; a schema
    without any validating keyword is ``any value``.
    """
    return _describe(schema)


def check_schema(schema: Any, where: str) -> None:
    """Refuse, with ``ValueError``, a schema this module cannot enforce exactly."""
    if not isinstance(schema, Mapping):
        raise ValueError(f"{where}: schema must be a dict, got {type(schema).__name__}")
    unknown = set(schema) - _VALIDATING - _ANNOTATIONS
    if unknown:
        raise ValueError(f"{where}: unsupported schema keyword(s) {sorted(unknown)}")
    for t in _types_of(schema):
        if t not in JSON_TYPES:
            raise ValueError(f"{where}: unknown type {t!r}, expected one of {JSON_TYPES}")
    if "enum" in schema and not isinstance(schema["enum"], (list, tuple)):
        raise ValueError(f"{where}: enum must be a list")
    for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        if key in schema and (isinstance(schema[key], bool) or not isinstance(schema[key], (int, float))):
            raise ValueError(f"{where}: {key} must be a number")
    for key in ("minLength", "maxLength", "minItems", "maxItems"):
        if key in schema and (isinstance(schema[key], bool) or not isinstance(schema[key], int) or schema[key] < 0):
            raise ValueError(f"{where}: {key} must be a non-negative integer")
    if "pattern" in schema:
        try:
            re.compile(schema["pattern"])
        except (re.error, TypeError) as exc:
            raise ValueError(f"{where}: bad pattern {schema['pattern']!r}: {exc}") from exc
    if "items" in schema:
        check_schema(schema["items"], f"{where}.items")
    if "properties" in schema:
        if not isinstance(schema["properties"], Mapping):
            raise ValueError(f"{where}: properties must be a dict")
        for key, sub in schema["properties"].items():
            check_schema(sub, f"{where}.properties.{key}")
    if "required" in schema and not all(isinstance(k, str) for k in schema["required"]):
        raise ValueError(f"{where}: required must be a list of names")
    extra = schema.get("additionalProperties", True)
    if not isinstance(extra, bool):
        check_schema(extra, f"{where}.additionalProperties")
    if "anyOf" in schema:
        if not isinstance(schema["anyOf"], (list, tuple)) or not schema["anyOf"]:
            raise ValueError(f"{where}: anyOf must be a non-empty list")
        for i, sub in enumerate(schema["anyOf"]):
            check_schema(sub, f"{where}.anyOf[{i}]")


def _type_matches(value: Any, kind: str) -> bool:
    found = json_type_of(value)
    return found == kind or (kind == "number" and found == "integer")


def _json_equal(a: Any, b: Any) -> bool:
    # 1 == True in Python; JSON keeps them apart.
    kinds = {json_type_of(a), json_type_of(b)}
    return (len(kinds) == 1 or kinds == {"integer", "number"}) and a == b


def validate_value(value: Any, schema: Mapping[str, Any], path: str) -> None:
    """Raise ``SchemaViolation`` unless ``value`` satisfies ``schema`` (checked by ``check_schema``)."""
    types = _types_of(schema)
    if types and not any(_type_matches(value, t) for t in types):
        raise SchemaViolation(path, " or ".join(types), describe_found(value))
    if "const" in schema and not _json_equal(value, schema["const"]):
        raise SchemaViolation(path, preview(schema["const"]), describe_found(value))
    if "enum" in schema and not any(_json_equal(value, v) for v in schema["enum"]):
        raise SchemaViolation(path, describe_schema({"enum": schema["enum"]}), describe_found(value))
    if "anyOf" in schema:
        for sub in schema["anyOf"]:
            try:
                validate_value(value, sub, path)
                break
            except SchemaViolation:
                continue
        else:
            raise SchemaViolation(path, describe_schema(schema), describe_found(value))
    kind = json_type_of(value)
    if kind in ("integer", "number"):
        _check_number(value, schema, path, kind)
    elif kind == "string":
        _check_string(value, schema, path)
    elif kind == "array":
        _check_array(value, schema, path)
    elif kind == "object":
        _check_object(value, schema, path)


def _check_number(value: float, schema: Mapping[str, Any], path: str, kind: str) -> None:
    for key, op, ok in (
        ("minimum", ">=", lambda v, b: v >= b),
        ("exclusiveMinimum", ">", lambda v, b: v > b),
        ("maximum", "<=", lambda v, b: v <= b),
        ("exclusiveMaximum", "<", lambda v, b: v < b),
    ):
        if key in schema and not ok(value, schema[key]):
            raise SchemaViolation(path, f"{kind} {op} {schema[key]}", str(value))


def _check_string(value: str, schema: Mapping[str, Any], path: str) -> None:
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        raise SchemaViolation(path, f"string of at most {_count(schema['maxLength'], 'character', 'characters')}",
                              _count(len(value), "character", "characters"))
    if "minLength" in schema and len(value) < schema["minLength"]:
        raise SchemaViolation(path, f"string of at least {_count(schema['minLength'], 'character', 'characters')}",
                              _count(len(value), "character", "characters"))
    if "pattern" in schema and re.search(schema["pattern"], value) is None:
        raise SchemaViolation(path, f"string matching {schema['pattern']}", preview(value))


def _check_array(value: list, schema: Mapping[str, Any], path: str) -> None:
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        raise SchemaViolation(path, f"array of at most {_count(schema['maxItems'], 'item', 'items')}",
                              _count(len(value), "item", "items"))
    if "minItems" in schema and len(value) < schema["minItems"]:
        raise SchemaViolation(path, f"array of at least {_count(schema['minItems'], 'item', 'items')}",
                              _count(len(value), "item", "items"))
    if "items" in schema:
        for i, item in enumerate(value):
            validate_value(item, schema["items"], f"{path}[{i}]")


def _check_object(value: Mapping[str, Any], schema: Mapping[str, Any], path: str) -> None:
    properties = schema.get("properties", {})
    for key in schema.get("required", ()):
        if key not in value:
            raise SchemaViolation(f"{path}.{key}", f"field \"{key}\" ({describe_schema(properties.get(key, {}))})",
                                  "nothing (it is required)")
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if key in properties:
            validate_value(item, properties[key], f"{path}.{key}")
        elif extra is False:
            allowed = ", ".join(sorted(properties)) or "none"
            raise SchemaViolation(f"{path}.{key}", f"only the fields {allowed}", f'unknown field "{key}"')
        elif isinstance(extra, Mapping):
            validate_value(item, extra, f"{path}.{key}")
