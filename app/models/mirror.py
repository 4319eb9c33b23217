"""Org mirror configs, the repositories they track, and the digests last mirrored per tag."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime, utcnow
from app.statuses import SyncStatus


class OrgMirrorConfig(Base):
    """One per organization. Secrets are stored encrypted (``*_encrypted`` columns)."""

    __tablename__ = "org_mirror_configs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), unique=True
    )
    robot_id: Mapped[int] = mapped_column(
        ForeignKey("robot_accounts.id", ondelete="RESTRICT"), index=True
    )
    is_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    external_registry_type: Mapped[str] = mapped_column(String(16))
    external_registry_url: Mapped[str] = mapped_column(String(2048))
    external_namespace: Mapped[str] = mapped_column(String(255))
    external_registry_username: Mapped[str | None] = mapped_column(String(255))
    external_registry_password_encrypted: Mapped[str | None] = mapped_column(Text)
    verify_tls: Mapped[bool] = mapped_column(Boolean, default=True)
    # The proxy block may carry proxy credentials in its URLs, so it is encrypted whole.
    proxy_encrypted: Mapped[str | None] = mapped_column(Text)
    repository_filters: Mapped[list[str]] = mapped_column(JSON, default=list)
    visibility: Mapped[str] = mapped_column(String(16))
    sync_interval: Mapped[int] = mapped_column(Integer)
    # The grid the schedule follows (start + k*interval); sync_start_date is its next slot,
    # or "now" after a sync-now.
    schedule_anchor: Mapped[datetime] = mapped_column(UTCDateTime())
    sync_start_date: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    sync_expiration_date: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sync_status: Mapped[str] = mapped_column(String(16), default=SyncStatus.NEVER_RUN)
    sync_retries_remaining: Mapped[int] = mapped_column(Integer, default=3)
    skopeo_timeout: Mapped[int] = mapped_column(Integer, default=300)
    creation_date: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(255))
    # "discovery" while one worker lists the source under the config lease, then "sync"
    # while any worker copies the queued repositories; null when no run is active.
    run_phase: Mapped[str | None] = mapped_column(String(16))
    follow_up_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    run_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    run_count: Mapped[int] = mapped_column(Integer, default=0)
    last_sync: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class MirrorRepository(Base):
    """A repository discovered in the source namespace, tracked per config."""

    __tablename__ = "mirror_repositories"
    __table_args__ = (
        UniqueConstraint("config_id", "name"),
        Index("ix_mirror_repositories_config_status", "config_id", "sync_status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    config_id: Mapped[int] = mapped_column(ForeignKey("org_mirror_configs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    sync_status: Mapped[str] = mapped_column(String(16), default=SyncStatus.NEVER_RUN)
    discovery_date: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_sync_date: Mapped[datetime | None] = mapped_column(UTCDateTime())
    status_message: Mapped[str | None] = mapped_column(Text)
    lease_owner: Mapped[str | None] = mapped_column(String(255))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    in_target: Mapped[bool] = mapped_column(Boolean, default=False)
    tags_total: Mapped[int] = mapped_column(Integer, default=0)
    tags_copied: Mapped[int] = mapped_column(Integer, default=0)
    tags_skipped: Mapped[int] = mapped_column(Integer, default=0)
    tags_failed: Mapped[int] = mapped_column(Integer, default=0)


class MirroredTag(Base):
    """The manifest digest last mirrored for one tag: what makes a resync incremental."""

    __tablename__ = "mirrored_tags"
    __table_args__ = (UniqueConstraint("repository_id", "tag"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repository_id: Mapped[int] = mapped_column(
        ForeignKey("mirror_repositories.id", ondelete="CASCADE")
    )
    tag: Mapped[str] = mapped_column(String(128))
    digest: Mapped[str] = mapped_column(String(100))
    mirrored_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
