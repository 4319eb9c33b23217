"""Request and response bodies of the org-mirror endpoints (SPEC §1)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator, ConfigDict, Field, JsonValue, field_validator

from app.schemas.common import ApiDateTime, ApiDateTimeIn, RequestModel, ResponseModel
from app.statuses import RegistryType, SyncStatus, Visibility

# A distribution path: components of lowercase alnum joined by '.', '_', '__' or dashes.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
NAMESPACE_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
ROBOT_RE = re.compile(r"^[a-z0-9_-]{2,255}\+[a-z0-9_]{1,254}$")


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


LowerVisibility = Annotated[Visibility, BeforeValidator(_lower)]
LowerRegistryType = Annotated[RegistryType, BeforeValidator(_lower)]
FilterPattern = Annotated[str, Field(min_length=1, max_length=255)]

_READ_ONLY = "Read-only (as returned by GET); accepted and ignored."
DESCRIPTIONS = {
    "external_registry_type": "Kind of source: harbor, quay, or oci (any registry with "
    "/v2/_catalog). Cannot be changed after creation.",
    "external_registry_url": "http(s)://host[:port] of the source registry; no credentials, "
    "path, query or fragment.",
    "external_namespace": "Harbor project, Quay organization or user, or the path prefix of "
    "an OCI registry namespace.",
    "robot_username": "orgname+robotname: the robot of this organization that pushes into the "
    "target.",
    "visibility": "Visibility of repositories created in the target: public or private.",
    "sync_interval": "Seconds between scheduled runs (60 to 31536000).",
    "sync_start_date": "First scheduled run, ISO 8601 (Z, an offset, or UTC when no zone is "
    "given). Runs follow the grid start + k * interval.",
    "is_enabled": "Whether scheduled and requested runs happen.",
    "external_registry_username": "Source registry user name; null or empty for anonymous.",
    "external_registry_password": "Source registry password or token (Quay: an OAuth token). "
    "Never returned. On update, leave the key out to keep it; null or empty clears it.",
    "external_registry_config": "TLS verification and proxy settings for the source.",
    "repository_filters": "Glob patterns on repository names (without the namespace); a "
    "leading '!' excludes. At most 100.",
    "skopeo_timeout": "Seconds one image copy may take (30 to 3600).",
}


class ProxyConfig(RequestModel):
    """Proxy settings for talking to the source registry."""

    http_proxy: str | None = Field(default=None, examples=["http://proxy.example.com:3128"])
    https_proxy: str | None = Field(default=None, examples=["http://proxy.example.com:3128"])
    no_proxy: str | None = Field(default=None, examples=["localhost,.corp.example.com"])


class ExternalRegistryConfig(RequestModel):
    """How to connect to the source registry."""

    verify_tls: bool = Field(default=True, description="Verify the source's TLS certificate.")
    proxy: ProxyConfig = Field(default_factory=ProxyConfig)


def _validate_namespace(value: str) -> str:
    if not NAMESPACE_RE.match(value):
        raise ValueError(
            "must be a registry path: lowercase letters, digits, '.', '_', '-', "
            "separated by '/' (e.g. 'library' or 'team/apps')"
        )
    return value


def _validate_robot(value: str) -> str:
    if not ROBOT_RE.match(value):
        raise ValueError("must be 'orgname+robotname' (e.g. 'myorg+mirrorbot')")
    return value


class _ConfigFields(RequestModel):
    """Validators shared by create and update."""

    @field_validator("external_namespace", check_fields=False)
    @classmethod
    def _namespace(cls, value: str | None) -> str | None:
        return None if value is None else _validate_namespace(value)

    @field_validator("robot_username", check_fields=False)
    @classmethod
    def _robot(cls, value: str | None) -> str | None:
        return None if value is None else _validate_robot(value)


class OrgMirrorConfigCreate(_ConfigFields):
    """Body of createOrgMirrorConfig."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "external_registry_type": "harbor",
                "external_registry_url": "https://harbor.example.com",
                "external_namespace": "my-project",
                "robot_username": "myorg+mirrorbot",
                "visibility": "private",
                "sync_interval": 3600,
                "sync_start_date": "2026-01-01T00:00:00Z",
                "is_enabled": True,
                "external_registry_username": "admin",
                "external_registry_password": "secret",
                "external_registry_config": {"verify_tls": True, "proxy": {}},
                "repository_filters": ["app-*", "!app-legacy"],
                "skopeo_timeout": 300,
            }
        }
    )

    external_registry_type: LowerRegistryType = Field(
        description=DESCRIPTIONS["external_registry_type"]
    )
    external_registry_url: str = Field(
        max_length=2048, description=DESCRIPTIONS["external_registry_url"]
    )
    external_namespace: str = Field(
        min_length=1, max_length=255, description=DESCRIPTIONS["external_namespace"]
    )
    robot_username: str = Field(description=DESCRIPTIONS["robot_username"])
    visibility: LowerVisibility = Field(description=DESCRIPTIONS["visibility"])
    sync_interval: int = Field(ge=60, le=31_536_000, description=DESCRIPTIONS["sync_interval"])
    sync_start_date: ApiDateTimeIn = Field(description=DESCRIPTIONS["sync_start_date"])
    is_enabled: bool = Field(default=True, description=DESCRIPTIONS["is_enabled"])
    external_registry_username: str | None = Field(
        default=None, max_length=255, description=DESCRIPTIONS["external_registry_username"]
    )
    external_registry_password: str | None = Field(
        default=None, max_length=4096, description=DESCRIPTIONS["external_registry_password"]
    )
    external_registry_config: ExternalRegistryConfig = Field(
        default_factory=ExternalRegistryConfig,
        description=DESCRIPTIONS["external_registry_config"],
    )
    repository_filters: list[FilterPattern] = Field(
        default_factory=list, max_length=100, description=DESCRIPTIONS["repository_filters"]
    )
    skopeo_timeout: int = Field(
        default=300, ge=30, le=3600, description=DESCRIPTIONS["skopeo_timeout"]
    )


class OrgMirrorConfigUpdate(_ConfigFields):
    """Body of updateOrgMirrorConfig: only the fields sent change.

    The read-only fields of GET are accepted and ignored, so a GET body can be sent back.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "sync_interval": 7200,
                "repository_filters": ["app-*", "!app-legacy"],
                "external_registry_password": "new-secret",
                "is_enabled": True,
            }
        }
    )

    external_registry_type: LowerRegistryType | None = Field(
        default=None, description=DESCRIPTIONS["external_registry_type"]
    )
    external_registry_url: str | None = Field(
        default=None, max_length=2048, description=DESCRIPTIONS["external_registry_url"]
    )
    external_namespace: str | None = Field(
        default=None, min_length=1, max_length=255, description=DESCRIPTIONS["external_namespace"]
    )
    robot_username: str | None = Field(default=None, description=DESCRIPTIONS["robot_username"])
    visibility: LowerVisibility | None = Field(default=None, description=DESCRIPTIONS["visibility"])
    sync_interval: int | None = Field(
        default=None, ge=60, le=31_536_000, description=DESCRIPTIONS["sync_interval"]
    )
    sync_start_date: ApiDateTimeIn | None = Field(
        default=None, description=DESCRIPTIONS["sync_start_date"]
    )
    is_enabled: bool | None = Field(default=None, description=DESCRIPTIONS["is_enabled"])
    external_registry_username: str | None = Field(
        default=None, max_length=255, description=DESCRIPTIONS["external_registry_username"]
    )
    external_registry_password: str | None = Field(
        default=None, max_length=4096, description=DESCRIPTIONS["external_registry_password"]
    )
    external_registry_config: ExternalRegistryConfig | None = Field(
        default=None, description=DESCRIPTIONS["external_registry_config"]
    )
    repository_filters: list[FilterPattern] | None = Field(
        default=None, max_length=100, description=DESCRIPTIONS["repository_filters"]
    )
    skopeo_timeout: int | None = Field(
        default=None, ge=30, le=3600, description=DESCRIPTIONS["skopeo_timeout"]
    )

    has_external_registry_password: JsonValue = Field(default=None, description=_READ_ONLY)
    sync_expiration_date: JsonValue = Field(default=None, description=_READ_ONLY)
    sync_status: JsonValue = Field(default=None, description=_READ_ONLY)
    sync_retries_remaining: JsonValue = Field(default=None, description=_READ_ONLY)
    creation_date: JsonValue = Field(default=None, description=_READ_ONLY)
    repo_sync_status_counts: JsonValue = Field(default=None, description=_READ_ONLY)
    last_sync: JsonValue = Field(default=None, description=_READ_ONLY)


class ProxyConfigRead(ResponseModel):
    http_proxy: str | None = None
    https_proxy: str | None = None
    no_proxy: str | None = None


class ExternalRegistryConfigRead(ResponseModel):
    verify_tls: bool
    proxy: ProxyConfigRead


class RepoSyncStatusCounts(ResponseModel):
    """How many tracked repositories are in each status (every key always present)."""

    NEVER_RUN: int = 0
    SYNC_NOW: int = 0
    SYNCING: int = 0
    SUCCESS: int = 0
    FAIL: int = 0
    CANCEL: int = 0
    SKIP: int = 0


class LastSync(ResponseModel):
    """Summary of the latest finished run."""

    started: ApiDateTime
    finished: ApiDateTime
    status: SyncStatus
    repositories_total: int
    repositories_failed: int
    tags_copied: int
    tags_skipped: int
    tags_failed: int
    message: str | None = Field(default=None, description="Why the run failed, if it did.")


class OrgMirrorConfigRead(ResponseModel):
    """An org mirror config as the API returns it (passwords never included)."""

    is_enabled: bool
    external_registry_type: RegistryType
    external_registry_url: str
    external_namespace: str
    external_registry_username: str | None
    has_external_registry_password: bool
    external_registry_config: ExternalRegistryConfigRead
    repository_filters: list[str]
    robot_username: str
    visibility: Visibility
    sync_interval: int
    sync_start_date: ApiDateTime
    sync_expiration_date: ApiDateTime | None
    sync_status: SyncStatus
    sync_retries_remaining: int
    skopeo_timeout: int
    creation_date: ApiDateTime
    repo_sync_status_counts: RepoSyncStatusCounts
    last_sync: LastSync | None


class MirrorRepositoryRead(ResponseModel):
    name: str
    sync_status: SyncStatus
    discovery_date: ApiDateTime
    last_sync_date: ApiDateTime | None
    status_message: str | None
    quay_repository: str | None
    tags_total: int
    tags_copied: int
    tags_skipped: int
    tags_failed: int


class MirrorRepositoryPage(ResponseModel):
    repositories: list[MirrorRepositoryRead]
    page: int
    limit: int
    total: int
    has_next: bool


class VerifyResult(ResponseModel):
    success: bool
    message: str
