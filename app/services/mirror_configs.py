"""Org mirror configs: create, read, update, delete (SPEC §1.1, §1.2, §1.5)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import InvalidRequest, NotFound
from app.models import OrgMirrorConfig, RobotAccount
from app.registry.http import Endpoint, ProxySettings
from app.registry.sources import Source
from app.registry.ssrf import HostNotResolvable, SsrfGuard, parse_registry_url
from app.repositories import audit as audit_repo
from app.repositories import mirror as mirror_repo
from app.repositories import organizations as org_repo
from app.repositories import runs as runs_repo
from app.schemas.mirror import (
    ExternalRegistryConfig,
    ExternalRegistryConfigRead,
    LastSync,
    OrgMirrorConfigCreate,
    OrgMirrorConfigRead,
    OrgMirrorConfigUpdate,
    ProxyConfigRead,
    RepoSyncStatusCounts,
)
from app.security import SecretBox
from app.services import proxies
from app.services.access import OrgAccess
from app.statuses import RegistryType

PASSWORD_PURPOSE = "source-password:{org}"
PROXY_PURPOSE = "source-proxy:{org}"


def missing_config(org_name: str) -> NotFound:
    return NotFound(
        f"Organization '{org_name}' has no mirror config; create one with "
        f"POST /api/v1/organization/{org_name}/mirror"
    )


async def load_config(session: AsyncSession, access: OrgAccess) -> OrgMirrorConfig:
    config = await mirror_repo.get_config(session, access.org_id)
    if config is None:
        raise missing_config(access.org_name)
    return config


async def _resolve_robot(
    session: AsyncSession, access: OrgAccess, robot_username: str
) -> RobotAccount:
    owner, _, shortname = robot_username.partition("+")
    if owner != access.org_name:
        raise InvalidRequest(
            f"robot_username: robot '{robot_username}' belongs to organization '{owner}', "
            f"not '{access.org_name}'; use a robot of '{access.org_name}'"
        )
    robot = await org_repo.get_robot(session, access.org_id, shortname)
    if robot is None:
        raise InvalidRequest(
            f"robot_username: robot '{robot_username}' does not exist; create it with "
            f"PUT /api/v1/organization/{access.org_name}/robots/{shortname}"
        )
    return robot


async def _checked_url(url: str, ssrf: SsrfGuard) -> str:
    normalised = parse_registry_url(url)
    await ssrf.check_url(normalised)
    return normalised


async def _check_proxies(ssrf: SsrfGuard, proxy: dict[str, str | None]) -> None:
    for key in proxies.URL_KEYS:
        value = proxy.get(key)
        if not value:
            continue
        try:
            await ssrf.check_proxy(value)
        except HostNotResolvable as exc:
            raise InvalidRequest(
                f"external_registry_config.proxy.{key}: host '{exc.host}' could not be "
                "resolved (DNS lookup failed); check the name"
            ) from None


def _seal_proxy(box: SecretBox, org: str, proxy: dict[str, str | None]) -> str | None:
    present = {k: v for k, v in proxy.items() if v}
    if not present:
        return None
    return box.encrypt(json.dumps(present), purpose=PROXY_PURPOSE.format(org=org))


def stored_proxy(box: SecretBox, org: str, config: OrgMirrorConfig) -> dict[str, str]:
    if not config.proxy_encrypted:
        return {}
    loaded: dict[str, str] = json.loads(
        box.decrypt(config.proxy_encrypted, purpose=PROXY_PURPOSE.format(org=org))
    )
    return loaded


def stored_password(box: SecretBox, org: str, config: OrgMirrorConfig) -> str | None:
    if not config.external_registry_password_encrypted:
        return None
    return box.decrypt(
        config.external_registry_password_encrypted, purpose=PASSWORD_PURPOSE.format(org=org)
    )


def _seal_password(box: SecretBox, org: str, password: str | None) -> str | None:
    if not password:
        return None
    return box.encrypt(password, purpose=PASSWORD_PURPOSE.format(org=org))


async def to_read(
    session: AsyncSession, *, access: OrgAccess, config: OrgMirrorConfig, box: SecretBox
) -> OrgMirrorConfigRead:
    robot = await org_repo.get_robot_by_id(session, config.robot_id)
    counts = await mirror_repo.status_counts(session, config.id)
    proxy = proxies.redact_all(stored_proxy(box, access.org_name, config))
    return OrgMirrorConfigRead(
        is_enabled=config.is_enabled,
        external_registry_type=config.external_registry_type,
        external_registry_url=config.external_registry_url,
        external_namespace=config.external_namespace,
        external_registry_username=config.external_registry_username,
        has_external_registry_password=bool(config.external_registry_password_encrypted),
        external_registry_config=ExternalRegistryConfigRead(
            verify_tls=config.verify_tls, proxy=ProxyConfigRead(**proxy)
        ),
        repository_filters=list(config.repository_filters),
        robot_username=f"{access.org_name}+{robot.shortname if robot else '?'}",
        visibility=config.visibility,
        sync_interval=config.sync_interval,
        sync_start_date=config.sync_start_date,
        sync_expiration_date=config.sync_expiration_date,
        sync_status=config.sync_status,
        sync_retries_remaining=config.sync_retries_remaining,
        skopeo_timeout=config.skopeo_timeout,
        creation_date=config.creation_date,
        repo_sync_status_counts=RepoSyncStatusCounts(**counts),
        last_sync=LastSync.model_validate(config.last_sync) if config.last_sync else None,
    )


async def create_config(
    session: AsyncSession,
    *,
    access: OrgAccess,
    body: OrgMirrorConfigCreate,
    box: SecretBox,
    ssrf: SsrfGuard,
) -> OrgMirrorConfigRead:
    """Create the org's config; 400 if it already has one or the robot/URL is refused."""
    url = await _checked_url(body.external_registry_url, ssrf)
    proxy = proxies.validated(body.external_registry_config.proxy.model_dump())
    await _check_proxies(ssrf, proxy)
    if await mirror_repo.get_config(session, access.org_id) is not None:
        raise InvalidRequest(
            f"Organization '{access.org_name}' already has a mirror config; change it with "
            "PUT or delete it first"
        )
    robot = await _resolve_robot(session, access, body.robot_username)
    config = OrgMirrorConfig(
        org_id=access.org_id,
        robot_id=robot.id,
        is_enabled=body.is_enabled,
        external_registry_type=body.external_registry_type.value,
        external_registry_url=url,
        external_namespace=body.external_namespace,
        external_registry_username=body.external_registry_username or None,
        external_registry_password_encrypted=_seal_password(
            box, access.org_name, body.external_registry_password
        ),
        verify_tls=body.external_registry_config.verify_tls,
        proxy_encrypted=_seal_proxy(box, access.org_name, proxy),
        repository_filters=list(body.repository_filters),
        visibility=body.visibility.value,
        sync_interval=body.sync_interval,
        schedule_anchor=body.sync_start_date,
        sync_start_date=body.sync_start_date,
        skopeo_timeout=body.skopeo_timeout,
    )
    try:
        await mirror_repo.add_config(session, config)
    except IntegrityError as exc:
        raise InvalidRequest(
            f"Organization '{access.org_name}' already has a mirror config"
        ) from exc
    await _audit(session, access, "mirror.create", {"fields": sorted(body.model_fields_set)})
    await runs_repo.notify_workers(session)
    return await to_read(session, access=access, config=config, box=box)


async def get_config(
    session: AsyncSession, *, access: OrgAccess, box: SecretBox
) -> OrgMirrorConfigRead:
    config = await load_config(session, access)
    return await to_read(session, access=access, config=config, box=box)


async def delete_config(session: AsyncSession, *, access: OrgAccess) -> None:
    """Remove the config and its tracking rows; mirrored images stay in the target."""
    config = await load_config(session, access)
    await mirror_repo.delete_config(session, config.id)
    await _audit(session, access, "mirror.delete", {"status_at_delete": config.sync_status})
    await runs_repo.notify_workers(session)


async def _audit(
    session: AsyncSession, access: OrgAccess, action: str, details: dict[str, Any]
) -> None:
    await audit_repo.add_event(
        session, actor=access.actor, org_name=access.org_name, action=action, details=details
    )


_NOT_NULL = (
    "external_registry_url",
    "external_namespace",
    "robot_username",
    "visibility",
    "sync_interval",
    "sync_start_date",
    "is_enabled",
    "repository_filters",
    "skopeo_timeout",
)


def _check_update(config: OrgMirrorConfig, body: OrgMirrorConfigUpdate) -> set[str]:
    sent = body.model_fields_set & set(OrgMirrorConfigCreate.model_fields)
    for field in _NOT_NULL:
        if field in sent and getattr(body, field) is None:
            raise InvalidRequest(f"{field}: must not be null")
    kind = body.external_registry_type
    if kind is not None and kind.value != config.external_registry_type:
        raise InvalidRequest(
            f"external_registry_type: cannot be changed (it is '{config.external_registry_type}'); "
            "delete the config and create a new one to mirror another kind of registry"
        )
    return sent


async def update_config(
    session: AsyncSession,
    *,
    access: OrgAccess,
    body: OrgMirrorConfigUpdate,
    box: SecretBox,
    ssrf: SsrfGuard,
) -> OrgMirrorConfigRead:
    """Apply the fields the body carries; everything else keeps its stored value."""
    url = None
    if body.external_registry_url is not None:
        url = await _checked_url(body.external_registry_url, ssrf)
    if body.external_registry_config is not None:
        await _check_proxies(ssrf, body.external_registry_config.proxy.model_dump())
    config = await load_config(session, access)
    sent = _check_update(config, body)
    if url is not None:
        config.external_registry_url = url
    if body.robot_username is not None:
        config.robot_id = (await _resolve_robot(session, access, body.robot_username)).id
    _apply_plain_fields(config, body, sent)
    _apply_secrets(config, body, sent, box, access.org_name)
    await session.flush()
    await _audit(session, access, "mirror.update", {"fields": sorted(sent)})
    await runs_repo.notify_workers(session)
    return await to_read(session, access=access, config=config, box=box)


def _apply_plain_fields(
    config: OrgMirrorConfig, body: OrgMirrorConfigUpdate, sent: set[str]
) -> None:
    for field in ("external_namespace", "is_enabled", "sync_interval", "skopeo_timeout"):
        if field in sent:
            setattr(config, field, getattr(body, field))
    if body.visibility is not None:
        config.visibility = body.visibility.value
    if body.repository_filters is not None:
        config.repository_filters = list(body.repository_filters)
    if body.sync_start_date is not None:
        config.schedule_anchor = body.sync_start_date
        config.sync_start_date = body.sync_start_date
    if "external_registry_username" in sent:
        config.external_registry_username = body.external_registry_username or None


def _apply_secrets(
    config: OrgMirrorConfig,
    body: OrgMirrorConfigUpdate,
    sent: set[str],
    box: SecretBox,
    org: str,
) -> None:
    if "external_registry_password" in sent:
        config.external_registry_password_encrypted = _seal_password(
            box, org, body.external_registry_password
        )
    if "external_registry_config" in sent:
        incoming = body.external_registry_config or ExternalRegistryConfig()
        merged = proxies.merge_redacted(incoming.proxy.model_dump(), stored_proxy(box, org, config))
        config.verify_tls = incoming.verify_tls
        config.proxy_encrypted = _seal_proxy(box, org, proxies.validated(merged))


def source_for(
    config: OrgMirrorConfig, *, org_name: str, box: SecretBox, ca_file: str | None = None
) -> Source:
    """The source registry of a config, with its secrets decrypted (kept out of reprs)."""
    proxy = stored_proxy(box, org_name, config)
    return Source(
        kind=RegistryType(config.external_registry_type),
        namespace=config.external_namespace,
        endpoint=Endpoint(
            url=config.external_registry_url,
            username=config.external_registry_username,
            password=stored_password(box, org_name, config),
            verify_tls=config.verify_tls,
            ca_file=ca_file,
            proxy=ProxySettings(
                http_proxy=proxy.get("http_proxy"),
                https_proxy=proxy.get("https_proxy"),
                no_proxy=proxy.get("no_proxy"),
            ),
        ),
    )
