"""HTTP routes for organizations and robot accounts (SPEC §3.2, §3.3)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from app.deps import AdminUser, OrgAdmin, RuntimeDep, SessionDep, body_doc, json_body
from app.routers.responses import errors
from app.schemas.organization import (
    ROBOT_SHORTNAME_PATTERN,
    OrganizationCreate,
    OrganizationRead,
    RobotList,
    RobotPut,
    RobotRead,
)
from app.services import organizations, robots

router = APIRouter(prefix="/api/v1/organization", tags=["organization"])

OrgBody = Annotated[OrganizationCreate, json_body(OrganizationCreate)]
RobotBody = Annotated[RobotPut, json_body(RobotPut)]
Shortname = Annotated[
    str, Path(pattern=ROBOT_SHORTNAME_PATTERN, description="Robot name without 'org+'.")
]


@router.post(
    "/",
    operation_id="createOrganization",
    response_model=OrganizationRead,
    status_code=status.HTTP_201_CREATED,
    responses=errors(400, 401, 403),
    openapi_extra=body_doc(OrganizationCreate),
)
async def create_organization(
    principal: AdminUser, body: OrgBody, session: SessionDep
) -> OrganizationRead:
    """Create an organization; the caller becomes its admin."""
    return await organizations.create_org_for_caller(session, principal=principal, name=body.name)


@router.get(
    "/{orgname}",
    operation_id="getOrganization",
    response_model=OrganizationRead,
    responses=errors(401, 403, 404),
)
async def get_organization(access: OrgAdmin, session: SessionDep) -> OrganizationRead:
    """Read an organization and its admins."""
    return await organizations.get_org(session, access=access)


@router.put(
    "/{orgname}/robots/{shortname}",
    operation_id="putOrganizationRobot",
    response_model=RobotRead,
    status_code=status.HTTP_200_OK,
    responses={
        201: {"model": RobotRead, "description": "Robot created"},
        **errors(400, 401, 403, 404),
    },
    openapi_extra=body_doc(RobotPut),
)
async def put_robot(
    access: OrgAdmin,
    shortname: Shortname,
    body: RobotBody,
    session: SessionDep,
    runtime: RuntimeDep,
    response: Response,
) -> RobotRead:
    """Create (201) or replace (200) a robot account and its push token."""
    robot, created = await robots.put_robot(
        session, access=access, shortname=shortname, body=body, box=runtime.box
    )
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return robot


@router.get(
    "/{orgname}/robots",
    operation_id="listOrganizationRobots",
    response_model=RobotList,
    responses=errors(401, 403, 404),
)
async def list_robots(access: OrgAdmin, session: SessionDep) -> RobotList:
    """List the organization's robots (tokens are never returned)."""
    return await robots.list_robots(session, access=access)


@router.delete(
    "/{orgname}/robots/{shortname}",
    operation_id="deleteOrganizationRobot",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=errors(400, 401, 403, 404, e400="The robot is used by the mirror config"),
)
async def delete_robot(access: OrgAdmin, shortname: Shortname, session: SessionDep) -> None:
    """Delete a robot account (refused while the mirror config uses it)."""
    await robots.delete_robot(session, access=access, shortname=shortname)
