"""Documented error responses: every route lists the ApiError codes it really returns."""

from __future__ import annotations

from typing import Any

from app.schemas.common import ApiErrorBody

_DESCRIPTIONS = {
    400: "Invalid request: malformed JSON, a field failing validation, or a refused change",
    401: "Missing, malformed, badly signed or expired token",
    403: "Token lacks org:admin, or the caller does not administer this organization",
    404: "Not found",
    503: "Not ready",
}


def errors(*codes: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: each code with Quay's ApiError body."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        text = descriptions.get(f"e{code}", _DESCRIPTIONS[code])
        out[code] = {"model": ApiErrorBody, "description": text}
    return out
