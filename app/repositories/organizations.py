"""SQL for organizations, admins and robot accounts. Session in; never commits."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import OrgAdmin, Organization, OrgMirrorConfig, RobotAccount


async def get_org(session: AsyncSession, name: str) -> Organization | None:
    result = await session.execute(select(Organization).where(Organization.name == name))
    return result.scalar_one_or_none()


async def list_orgs(session: AsyncSession) -> Sequence[Organization]:
    result = await session.execute(select(Organization).order_by(Organization.name))
    return result.scalars().all()


async def add_org(session: AsyncSession, name: str) -> Organization:
    org = Organization(name=name)
    session.add(org)
    await session.flush()
    return org


async def is_admin(session: AsyncSession, org_id: int, username: str) -> bool:
    query = select(exists().where(OrgAdmin.org_id == org_id, OrgAdmin.username == username))
    return bool(await session.scalar(query))


async def list_admins(session: AsyncSession, org_id: int) -> list[str]:
    result = await session.execute(
        select(OrgAdmin.username).where(OrgAdmin.org_id == org_id).order_by(OrgAdmin.username)
    )
    return list(result.scalars().all())


async def add_admin(session: AsyncSession, org_id: int, username: str) -> None:
    session.add(OrgAdmin(org_id=org_id, username=username))
    await session.flush()


async def remove_admin(session: AsyncSession, org_id: int, username: str) -> int:
    result = await session.execute(
        delete(OrgAdmin).where(OrgAdmin.org_id == org_id, OrgAdmin.username == username)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def get_robot(session: AsyncSession, org_id: int, shortname: str) -> RobotAccount | None:
    result = await session.execute(
        select(RobotAccount).where(
            RobotAccount.org_id == org_id, RobotAccount.shortname == shortname
        )
    )
    return result.scalar_one_or_none()


async def get_robot_by_id(session: AsyncSession, robot_id: int) -> RobotAccount | None:
    return await session.get(RobotAccount, robot_id)


async def list_robots(session: AsyncSession, org_id: int) -> Sequence[RobotAccount]:
    result = await session.execute(
        select(RobotAccount).where(RobotAccount.org_id == org_id).order_by(RobotAccount.shortname)
    )
    return result.scalars().all()


async def add_robot(session: AsyncSession, robot: RobotAccount) -> RobotAccount:
    session.add(robot)
    await session.flush()
    return robot


async def delete_robot(session: AsyncSession, robot: RobotAccount) -> None:
    await session.delete(robot)
    await session.flush()


async def robot_in_use(session: AsyncSession, robot_id: int) -> bool:
    count = await session.scalar(
        select(func.count())
        .select_from(OrgMirrorConfig)
        .where(OrgMirrorConfig.robot_id == robot_id)
    )
    return bool(count)
