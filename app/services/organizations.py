"""Organizations and their admins (API and ``orgmirror org`` CLI)."""

from __future__ import annotations

import re

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import InvalidRequest, NotFound
from app.repositories import audit as audit_repo
from app.repositories import organizations as org_repo
from app.schemas.organization import ORG_NAME_PATTERN, OrganizationRead
from app.security import Principal
from app.services.access import OrgAccess, require_admin_scope

_ORG_NAME = re.compile(ORG_NAME_PATTERN)


async def create_org(
    session: AsyncSession, *, name: str, admins: list[str], actor: str
) -> OrganizationRead:
    """Create an org with the given admins; 400 if the name is taken or invalid."""
    if not _ORG_NAME.match(name):
        raise InvalidRequest(
            "name: must be 2-255 characters of lowercase letters, digits, '_' and '-'"
        )
    if await org_repo.get_org(session, name) is not None:
        raise InvalidRequest(f"Organization '{name}' already exists")
    try:
        org = await org_repo.add_org(session, name)
        for username in sorted(set(admins)):
            await org_repo.add_admin(session, org.id, username)
    except IntegrityError as exc:
        raise InvalidRequest(f"Organization '{name}' already exists") from exc
    await audit_repo.add_event(
        session, actor=actor, org_name=name, action="org.create", details={"admins": admins}
    )
    return OrganizationRead(name=org.name, creation_date=org.created_at, admins=sorted(admins))


async def create_org_for_caller(
    session: AsyncSession, *, principal: Principal, name: str
) -> OrganizationRead:
    require_admin_scope(principal)
    return await create_org(
        session, name=name, admins=[principal.username], actor=principal.username
    )


async def get_org(session: AsyncSession, *, access: OrgAccess) -> OrganizationRead:
    org = await org_repo.get_org(session, access.org_name)
    if org is None:
        raise NotFound(f"Organization '{access.org_name}' does not exist")
    admins = await org_repo.list_admins(session, org.id)
    return OrganizationRead(name=org.name, creation_date=org.created_at, admins=admins)


async def list_orgs(session: AsyncSession) -> list[OrganizationRead]:
    result = []
    for org in await org_repo.list_orgs(session):
        admins = await org_repo.list_admins(session, org.id)
        result.append(OrganizationRead(name=org.name, creation_date=org.created_at, admins=admins))
    return result


async def add_admin(session: AsyncSession, *, name: str, username: str, actor: str) -> None:
    org = await org_repo.get_org(session, name)
    if org is None:
        raise NotFound(f"Organization '{name}' does not exist; create it first")
    if await org_repo.is_admin(session, org.id, username):
        return
    await org_repo.add_admin(session, org.id, username)
    await audit_repo.add_event(
        session, actor=actor, org_name=name, action="org.admin_add", details={"user": username}
    )


async def remove_admin(session: AsyncSession, *, name: str, username: str, actor: str) -> None:
    org = await org_repo.get_org(session, name)
    if org is None:
        raise NotFound(f"Organization '{name}' does not exist")
    if not await org_repo.remove_admin(session, org.id, username):
        raise NotFound(f"'{username}' is not an admin of '{name}'")
    await audit_repo.add_event(
        session, actor=actor, org_name=name, action="org.admin_remove", details={"user": username}
    )
