"""The AppError hierarchy.

Services and the registry layer raise these; only the HTTP layer (``app.main``) knows how
to turn them into Quay's ApiError body, via :func:`api_error_body`.
"""

from __future__ import annotations

from typing import ClassVar


class AppError(Exception):
    """An expected failure with a user-facing message that names what failed."""

    status: ClassVar[int] = 500
    title: ClassVar[str] = "internal_error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidRequest(AppError):
    """Malformed input, a validation failure or a business-rule refusal (400)."""

    status = 400
    title = "invalid_request"


class InvalidToken(AppError):
    """No token, or one that is malformed, badly signed, expired or for someone else (401)."""

    status = 401
    title = "invalid_token"


class InsufficientScope(AppError):
    """A valid token that may not do this (403)."""

    status = 403
    title = "insufficient_scope"


class NotFound(AppError):
    """The thing asked for does not exist, or (sync-now) is already queued or running (404)."""

    status = 404
    title = "not_found"


class NotReady(AppError):
    """The service cannot serve yet: database unreachable or schema behind the code (503)."""

    status = 503
    title = "not_ready"


def api_error_body(*, status: int, title: str, detail: str, base_url: str) -> dict[str, str | int]:
    """Quay's ApiError shape; error_message and error_type repeat detail and title."""
    return {
        "status": status,
        "type": f"{base_url.rstrip('/')}/api/v1/error/{title}",
        "title": title,
        "detail": detail,
        "error_message": detail,
        "error_type": title,
    }
