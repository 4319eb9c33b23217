"""Errors at the registry boundary: httpx failures become these, each with a clear message.

``retryable`` tells the retry policy (and later the worker) whether trying again can help;
``retry_after`` keeps a server's ``Retry-After`` in seconds.
"""

from __future__ import annotations

from app.errors import AppError


class RegistryError(AppError):
    """Talking to a source or target registry failed."""

    status = 502
    title = "registry_error"
    retryable = False

    def __init__(self, detail: str, *, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class RegistryUnavailable(RegistryError):
    """Connection refused or reset, timeout, 429 or 5xx: worth another try."""

    retryable = True


class RegistryTimeout(RegistryUnavailable):
    """The registry accepted the connection but did not answer in time."""


class RegistryDnsError(RegistryError):
    """The registry's host name does not resolve."""


class RegistryTlsError(RegistryError):
    """TLS handshake or certificate verification failed."""


class RegistryAuthFailed(RegistryError):
    """The registry (or its token service) refused the credentials."""


class RegistryForbidden(RegistryError):
    """Authenticated, but not allowed to see this."""


class RegistryNotFound(RegistryError):
    """The namespace, repository or manifest does not exist."""


class RegistryProtocolError(RegistryError):
    """The registry answered something that does not follow the API (or redirected off-host)."""
