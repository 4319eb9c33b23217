"""Settings, read once from the environment (prefix ``ORGMIRROR_``) and passed in.

In the embedded default (no ``ORGMIRROR_DATABASE_URL``) the service keeps a SQLite file and
generated secrets under ``ORGMIRROR_DATA_DIR``; with an explicit database URL it is in
production mode and refuses to start without its secrets.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

SECRETS_FILE = "secrets.json"


class Settings(BaseSettings):
    """Every setting of the service; the README's configuration table mirrors this class."""

    model_config = SettingsConfigDict(env_prefix="ORGMIRROR_", extra="ignore")

    data_dir: Path = Path("orgmirror-data")
    database_url: str | None = None
    public_url: str = "http://127.0.0.1:8080"

    jwt_secret: SecretStr | None = None
    jwt_public_key_file: Path | None = None
    jwt_jwks_file: Path | None = None
    jwt_algorithms: Annotated[list[str], NoDecode] = Field(default_factory=list)
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    superusers: Annotated[list[str], NoDecode] = Field(default_factory=list)
    oauth_authorization_url: str = "/oauth/authorize"

    encryption_key: SecretStr | None = None

    ssrf_allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)

    target_registry: str = "127.0.0.1:5000"
    target_tls_verify: bool = True
    target_kind: Literal["oci", "quay"] = "oci"
    target_api_token: SecretStr | None = None
    target_api_url: str | None = None
    ca_file: Path | None = None

    worker_concurrency: int = Field(default=4, ge=1, le=64)
    tag_concurrency: int = Field(default=4, ge=1, le=64)
    worker_poll_interval: float = Field(default=5.0, gt=0)
    lease_seconds: int = Field(default=30, ge=5, le=3600)
    target_recheck_every: int = Field(default=24, ge=1)
    copy_attempts: int = Field(default=3, ge=1, le=10)
    skopeo_path: str = "skopeo"
    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"

    @field_validator("superusers", "ssrf_allowed_hosts", "jwt_algorithms", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        """Accept ``a,b c`` (comma or space separated) as well as a JSON list."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part for part in text.replace(",", " ").split() if part]
        return value

    @property
    def embedded(self) -> bool:
        """True when running on the embedded SQLite default (no database URL given)."""
        return self.database_url is None

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'orgmirror.db').resolve()}"


def _generated_secrets(data_dir: Path) -> dict[str, str]:
    """Read, or create once with mode 0600, the embedded mode's secrets file."""
    path = data_dir / SECRETS_FILE
    if path.exists():
        loaded: dict[str, str] = json.loads(path.read_text())
        return loaded
    data_dir.mkdir(parents=True, exist_ok=True)
    values = {
        "jwt_secret": secrets.token_urlsafe(48),
        "encryption_key": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(values, handle)
    return values


class ConfigurationError(RuntimeError):
    """The settings cannot work together; the message says which one to set."""


def complete_settings(settings: Settings) -> Settings:
    """Fill generated secrets in embedded mode; in production insist they are configured."""
    has_jwt_key = bool(
        settings.jwt_secret or settings.jwt_public_key_file or settings.jwt_jwks_file
    )
    if settings.target_kind == "quay" and settings.target_api_token is None:
        raise ConfigurationError(
            "ORGMIRROR_TARGET_KIND=quay needs ORGMIRROR_TARGET_API_TOKEN (a Quay OAuth token "
            "with repo:create) to create repositories before pushing"
        )
    if settings.embedded:
        generated = _generated_secrets(settings.data_dir)
        updates: dict[str, object] = {}
        if not has_jwt_key:
            updates["jwt_secret"] = SecretStr(generated["jwt_secret"])
        if settings.encryption_key is None:
            updates["encryption_key"] = SecretStr(generated["encryption_key"])
        return settings.model_copy(update=updates)
    missing = []
    if not has_jwt_key:
        missing.append(
            "ORGMIRROR_JWT_SECRET (or ORGMIRROR_JWT_PUBLIC_KEY_FILE / ORGMIRROR_JWT_JWKS_FILE)"
        )
    if settings.encryption_key is None:
        missing.append("ORGMIRROR_ENCRYPTION_KEY")
    if missing:
        raise ConfigurationError(
            "ORGMIRROR_DATABASE_URL is set (production mode), so secrets are not generated; "
            "set " + " and ".join(missing)
        )
    return settings


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read from the environment once."""
    return complete_settings(Settings())
