"""Who may do what: the ``org:admin`` scope, org admins and superusers (SPEC §3)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import InsufficientScope, NotFound
from app.repositories import organizations as org_repo
from app.security import ADMIN_SCOPE, Principal


@dataclass(frozen=True)
class OrgAccess:
    """Proof that ``actor`` administers the organization ``org_name``."""

    org_id: int
    org_name: str
    actor: str


def require_admin_scope(principal: Principal) -> None:
    if ADMIN_SCOPE not in principal.scopes:
        raise InsufficientScope(
            f"Token lacks the '{ADMIN_SCOPE}' scope; request a token that grants it"
        )


async def authorize_org_admin(
    session: AsyncSession, *, principal: Principal, orgname: str
) -> OrgAccess:
    """403 unless the caller administers ``orgname``; 404 for a missing org (superusers only).

    A non-superuser gets 403 for a missing org too, so org names cannot be probed.
    """
    require_admin_scope(principal)
    org = await org_repo.get_org(session, orgname)
    if org is None:
        if principal.is_superuser:
            raise NotFound(f"Organization '{orgname}' does not exist")
        raise InsufficientScope(f"User '{principal.username}' does not administer '{orgname}'")
    if not principal.is_superuser and not await org_repo.is_admin(
        session, org.id, principal.username
    ):
        raise InsufficientScope(f"User '{principal.username}' does not administer '{orgname}'")
    return OrgAccess(org_id=org.id, org_name=org.name, actor=principal.username)
