"""Liveness, readiness and Prometheus metrics (not part of the org-mirror API)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.deps import RuntimeDep, SessionDep
from app.metrics import REGISTRY
from app.routers.responses import errors
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
    responses=errors(503, e503="Database unreachable or schema not migrated"),
)
async def readyz(session: SessionDep, runtime: RuntimeDep) -> dict[str, str]:
    """Ready to serve: the database answers and its schema is at the latest migration."""
    return await health.require_ready(session, head=runtime.schema_head)


@router.get("/metrics", operation_id="metrics", response_class=Response)
async def metrics(session: SessionDep) -> Response:
    """Prometheus metrics (text exposition format)."""
    await health.refresh_gauges(session)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
