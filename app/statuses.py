"""Status names shared by the database, the API schemas and the worker (SPEC §2)."""

from __future__ import annotations

from enum import StrEnum


class SyncStatus(StrEnum):
    """Status of an org mirror config, and (with SKIP) of a tracked repository."""

    NEVER_RUN = "NEVER_RUN"
    SYNC_NOW = "SYNC_NOW"
    SYNCING = "SYNCING"
    SUCCESS = "SUCCESS"
    FAIL = "FAIL"
    CANCEL = "CANCEL"
    SKIP = "SKIP"


CONFIG_STATUSES: tuple[SyncStatus, ...] = tuple(s for s in SyncStatus if s is not SyncStatus.SKIP)
REPOSITORY_STATUSES: tuple[SyncStatus, ...] = tuple(SyncStatus)
TERMINAL_STATUSES = frozenset({SyncStatus.SUCCESS, SyncStatus.FAIL, SyncStatus.CANCEL})


class RegistryType(StrEnum):
    HARBOR = "harbor"
    QUAY = "quay"
    OCI = "oci"


class Visibility(StrEnum):
    PUBLIC = "public"
    PRIVATE = "private"
