"""HTTP routes of the org-mirror API (SPEC §1). One service call per handler."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from app.deps import OrgAdmin, RuntimeDep, SessionDep, body_doc, json_body
from app.routers.responses import errors
from app.schemas.mirror import (
    MirrorRepositoryPage,
    OrgMirrorConfigCreate,
    OrgMirrorConfigRead,
    OrgMirrorConfigUpdate,
    VerifyResult,
)
from app.services import mirror_configs, mirror_runs

router = APIRouter(prefix="/api/v1/organization/{orgname}/mirror", tags=["org_mirror"])

CreateBody = Annotated[OrgMirrorConfigCreate, json_body(OrgMirrorConfigCreate)]
UpdateBody = Annotated[OrgMirrorConfigUpdate, json_body(OrgMirrorConfigUpdate)]


@router.post(
    "",
    operation_id="createOrgMirrorConfig",
    response_model=OrgMirrorConfigRead,
    status_code=status.HTTP_201_CREATED,
    responses=errors(400, 401, 403, 404),
    openapi_extra=body_doc(OrgMirrorConfigCreate),
)
async def create_config(
    access: OrgAdmin,
    body: CreateBody,
    session: SessionDep,
    runtime: RuntimeDep,
    response: Response,
) -> OrgMirrorConfigRead:
    """Create the organization's mirror configuration."""
    response.headers["Location"] = f"/api/v1/organization/{access.org_name}/mirror"
    return await mirror_configs.create_config(
        session, access=access, body=body, box=runtime.box, ssrf=runtime.ssrf
    )


@router.get(
    "",
    operation_id="getOrgMirrorConfig",
    response_model=OrgMirrorConfigRead,
    responses=errors(401, 403, 404),
)
async def get_config(
    access: OrgAdmin, session: SessionDep, runtime: RuntimeDep
) -> OrgMirrorConfigRead:
    """Read the organization's mirror configuration and its sync state."""
    return await mirror_configs.get_config(session, access=access, box=runtime.box)


@router.put(
    "",
    operation_id="updateOrgMirrorConfig",
    response_model=OrgMirrorConfigRead,
    responses=errors(400, 401, 403, 404),
    openapi_extra=body_doc(OrgMirrorConfigUpdate),
)
async def update_config(
    access: OrgAdmin, body: UpdateBody, session: SessionDep, runtime: RuntimeDep
) -> OrgMirrorConfigRead:
    """Change the fields the body carries; everything else stays as it is."""
    return await mirror_configs.update_config(
        session, access=access, body=body, box=runtime.box, ssrf=runtime.ssrf
    )


@router.delete(
    "",
    operation_id="deleteOrgMirrorConfig",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=errors(401, 403, 404),
)
async def delete_config(access: OrgAdmin, session: SessionDep) -> None:
    """Delete the configuration and its tracking rows; mirrored images stay in the target."""
    await mirror_configs.delete_config(session, access=access)


@router.get(
    "/repositories",
    operation_id="listOrgMirrorRepositories",
    response_model=MirrorRepositoryPage,
    responses=errors(400, 401, 403, 404),
)
async def list_repositories(
    access: OrgAdmin,
    session: SessionDep,
    page: Annotated[int, Query(ge=1, description="Page number, from 1.")] = 1,
    limit: Annotated[int, Query(ge=1, description="Page size, 1-500 (larger is capped).")] = 100,
    status: Annotated[str | None, Query(description="Only this sync status.")] = None,
) -> MirrorRepositoryPage:
    """List the repositories discovered in the source namespace, ordered by name."""
    return await mirror_runs.list_repositories(
        session, access=access, page=page, limit=limit, status=status
    )


@router.post(
    "/sync-now",
    operation_id="syncOrgMirrorNow",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=errors(400, 401, 403, 404, e404="No config, or a sync is already queued or running"),
)
async def sync_now(
    access: OrgAdmin,
    session: SessionDep,
    coalesce: Annotated[
        bool, Query(description="If a run is queued or active, queue one follow-up (204).")
    ] = False,
) -> None:
    """Start a sync now."""
    await mirror_runs.sync_now(session, access=access, coalesce=coalesce)


@router.post(
    "/sync-cancel",
    operation_id="cancelOrgMirrorSync",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=errors(400, 401, 403, 404, e400="Already cancelled"),
)
async def sync_cancel(access: OrgAdmin, session: SessionDep) -> None:
    """Cancel the current run; the schedule continues."""
    await mirror_runs.cancel(session, access=access)


@router.post(
    "/verify",
    operation_id="verifyOrgMirrorConnection",
    response_model=VerifyResult,
    responses=errors(401, 403, 404),
)
async def verify(access: OrgAdmin, session: SessionDep, runtime: RuntimeDep) -> VerifyResult:
    """Test the stored configuration against the source without syncing."""
    return await mirror_runs.verify(
        session, access=access, box=runtime.box, registry=runtime.registry
    )
