"""Turn pydantic's validation errors into one message that names each field and rule."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

_MESSAGES: dict[str, str] = {
    "missing": "field required",
    "extra_forbidden": "unknown field (not part of this request's schema)",
    "greater_than_equal": "must be at least {ge}",
    "less_than_equal": "must be at most {le}",
    "greater_than": "must be greater than {gt}",
    "less_than": "must be less than {lt}",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "string_too_short": "must be at least {min_length} characters",
    "string_too_long": "must be at most {max_length} characters",
    "too_short": "must have at least {min_length} items",
    "too_long": "must have at most {max_length} items",
    "string_pattern_mismatch": "must match {pattern}",
    "enum": "must be one of {expected}",
    "literal_error": "must be one of {expected}",
}

_BODY_PREFIXES = ("body", "query", "path", "header")


def _location(loc: Sequence[int | str]) -> str:
    parts = [str(p) for p in loc if p not in _BODY_PREFIXES]
    return ".".join(parts)


def _message(error: Mapping[str, Any]) -> str:
    kind = str(error.get("type", ""))
    if kind == "json_invalid":
        return "request body is not valid JSON"
    if kind == "value_error":
        return str(error.get("msg", "")).removeprefix("Value error, ")
    template = _MESSAGES.get(kind)
    if template is None:
        return str(error.get("msg", "is invalid"))
    try:
        return template.format(**(error.get("ctx") or {}))
    except (KeyError, IndexError):
        return str(error.get("msg", "is invalid"))


def describe_errors(errors: Iterable[Mapping[str, Any]]) -> str:
    """``sync_interval: must be at least 60; foo: unknown field ...`` (deduplicated)."""
    lines: list[str] = []
    for error in errors:
        where = _location(error.get("loc", ()))
        what = _message(error)
        if not where and error.get("type") in {"model_type", "model_attributes_type"}:
            line = "request body must be a JSON object"
        else:
            line = f"{where}: {what}" if where else what
        if line not in lines:
            lines.append(line)
    return "; ".join(lines) or "invalid request"
