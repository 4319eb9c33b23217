"""Robot accounts: ``org+shortname`` and the token it pushes into the target with."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.db import utcnow
from app.errors import InvalidRequest, NotFound
from app.models import RobotAccount
from app.repositories import audit as audit_repo
from app.repositories import organizations as org_repo
from app.schemas.organization import RobotList, RobotPut, RobotRead
from app.security import SecretBox
from app.services.access import OrgAccess


def robot_purpose(org_name: str, shortname: str) -> str:
    """Associated data binding a robot token's ciphertext to its robot."""
    return f"robot:{org_name}+{shortname}"


def _read(org_name: str, robot: RobotAccount) -> RobotRead:
    return RobotRead(
        name=f"{org_name}+{robot.shortname}",
        description=robot.description,
        created=robot.created_at,
    )


async def put_robot(
    session: AsyncSession, *, access: OrgAccess, shortname: str, body: RobotPut, box: SecretBox
) -> tuple[RobotRead, bool]:
    """Create or replace a robot; returns it and whether it was created."""
    sealed = box.encrypt(body.token, purpose=robot_purpose(access.org_name, shortname))
    robot = await org_repo.get_robot(session, access.org_id, shortname)
    created = robot is None
    if robot is None:
        robot = RobotAccount(
            org_id=access.org_id,
            shortname=shortname,
            description=body.description,
            token_encrypted=sealed,
        )
        await org_repo.add_robot(session, robot)
    else:
        robot.description = body.description
        robot.token_encrypted = sealed
        robot.updated_at = utcnow()
        await session.flush()
    await audit_repo.add_event(
        session,
        actor=access.actor,
        org_name=access.org_name,
        action="robot.create" if created else "robot.replace",
        details={"robot": f"{access.org_name}+{shortname}"},
    )
    return _read(access.org_name, robot), created


async def list_robots(session: AsyncSession, *, access: OrgAccess) -> RobotList:
    robots = await org_repo.list_robots(session, access.org_id)
    return RobotList(robots=[_read(access.org_name, robot) for robot in robots])


async def delete_robot(session: AsyncSession, *, access: OrgAccess, shortname: str) -> None:
    name = f"{access.org_name}+{shortname}"
    robot = await org_repo.get_robot(session, access.org_id, shortname)
    if robot is None:
        raise NotFound(f"Robot '{name}' does not exist")
    if await org_repo.robot_in_use(session, robot.id):
        raise InvalidRequest(
            f"Robot '{name}' is used by the org mirror config; point the config at another "
            "robot (PUT robot_username) or delete the config first"
        )
    await org_repo.delete_robot(session, robot)
    await audit_repo.add_event(
        session,
        actor=access.actor,
        org_name=access.org_name,
        action="robot.delete",
        details={"robot": name},
    )
