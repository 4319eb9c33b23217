"""Proxy settings: validation, and redaction of proxy credentials in API output.

GET shows ``http://***@proxy:3128`` for a proxy URL with credentials; sending that value
back in PUT keeps the stored credentials, so GET -> PUT round trips lose nothing.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from app.errors import InvalidRequest

REDACTED = "***"
URL_KEYS = ("http_proxy", "https_proxy")
_SCHEMES = {"http", "https", "socks5", "socks5h"}


def redact(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{REDACTED}@{host}"))


def redact_all(proxy: dict[str, str]) -> dict[str, str]:
    return {k: redact(v) if k in URL_KEYS else v for k, v in proxy.items()}


def validated(proxy: dict[str, str | None]) -> dict[str, str | None]:
    for key in URL_KEYS:
        value = proxy.get(key)
        if not value:
            continue
        try:
            parts = urlsplit(value)
            _ = parts.port
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in _SCHEMES or not parts.hostname:
            raise InvalidRequest(
                f"external_registry_config.proxy.{key}: must be a URL such as "
                "http://proxy.example.com:3128 (schemes: http, https, socks5)"
            )
    return proxy


def merge_redacted(
    incoming: dict[str, str | None], stored: dict[str, str]
) -> dict[str, str | None]:
    """Keep stored credentials where the incoming URL is the redacted form of the stored one."""
    merged = dict(incoming)
    for key in URL_KEYS:
        value, old = incoming.get(key), stored.get(key)
        if value and old and f"{REDACTED}@" in value and redact(old) == value:
            merged[key] = old
    return merged
