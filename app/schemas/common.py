"""Types shared by the request and response schemas."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, WithJsonSchema

API_DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def format_api_datetime(value: datetime) -> str:
    """UTC, whole seconds, ``Z``: the one date format the API returns (SPEC §1.2)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime(API_DATETIME_FORMAT)


def parse_api_datetime(value: object) -> datetime:
    """ISO 8601 with ``Z``, an offset, fractions, or no zone (read as UTC); stored in UTC."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(
                f"must be an ISO 8601 date-time such as 2026-01-31T12:00:00Z, got {value!r}"
            ) from None
    else:
        raise ValueError("must be an ISO 8601 date-time string such as 2026-01-31T12:00:00Z")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    # The API speaks whole seconds; dropping fractions keeps GET -> PUT round trips exact.
    return parsed.astimezone(UTC).replace(microsecond=0)


ApiDateTime = Annotated[
    datetime,
    PlainSerializer(format_api_datetime, return_type=str),
    WithJsonSchema(
        {"type": "string", "format": "date-time", "example": "2026-01-31T12:00:00Z"},
        mode="serialization",
    ),
]
"""A date-time that the API writes as ``YYYY-MM-DDTHH:MM:SSZ``."""

ApiDateTimeIn = Annotated[
    datetime,
    BeforeValidator(parse_api_datetime),
    WithJsonSchema(
        {"type": "string", "format": "date-time", "example": "2026-01-31T12:00:00Z"},
        mode="validation",
    ),
]
"""A date-time the API reads: any ISO 8601 form, normalised to UTC."""


class RequestModel(BaseModel):
    """Request bodies: unknown fields rejected, no silent type coercion."""

    model_config = ConfigDict(extra="forbid", strict=True)


class ResponseModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ApiErrorBody(BaseModel):
    """Quay's ApiError body, returned for every failure."""

    status: int
    type: str
    title: str
    detail: str
    error_message: str
    error_type: str
