"""Liveness, readiness and Prometheus metrics (not part of the org-mirror API)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.deps import RuntimeDep, SessionDep
from app.metrics import REGISTRY
from app.services import health

router = APIRouter(tags=["operations"])


@router.get("/healthz", operation_id="healthz", response_model=dict[str, str])
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    operation_id="readyz",
    response_model=dict[str, str],
    responses={503: {"description": "Database unreachable or schema not migrated"}},
)
async def readyz(session: SessionDep, runtime: RuntimeDep) -> JSONResponse:
    """Ready to serve: the database answers and its schema is at the latest migration."""
    state = await health.readiness(session, head=runtime.schema_head)
    body = {
        "status": "ready" if state.ready else "not ready",
        "database": state.database,
        "migrations": state.migrations,
    }
    return JSONResponse(body, status_code=200 if state.ready else 503)


@router.get("/metrics", operation_id="metrics", response_class=Response)
async def metrics(session: SessionDep) -> Response:
    """Prometheus metrics (text exposition format)."""
    await health.refresh_gauges(session)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
