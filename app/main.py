"""create_app(): routers, error handlers, OpenAPI, lifespan."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from app import __version__
from app.config import Settings, get_settings
from app.errors import AppError, InvalidToken, api_error_body
from app.routers import docs, health, mirror, organizations
from app.runtime import Runtime
from app.schemas.mirror import OrgMirrorConfigCreate, OrgMirrorConfigUpdate
from app.schemas.organization import OrganizationCreate, RobotPut
from app.schemas.validation import describe_errors
from app.workers.worker import Worker

log = logging.getLogger("orgmirror.api")

BODY_MODELS: tuple[type[BaseModel], ...] = (
    OrgMirrorConfigCreate,
    OrgMirrorConfigUpdate,
    OrganizationCreate,
    RobotPut,
)
_HTTP_TITLES = {404: "not_found", 405: "method_not_allowed", 401: "invalid_token"}


def _error_response(
    request: Request,
    status: int,
    title: str,
    detail: str,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    base = str(request.base_url)
    body = api_error_body(status=status, title=title, detail=detail, base_url=base)
    return JSONResponse(body, status_code=status, headers=headers)


async def _app_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
    return _error_response(
        request,
        exc.status,
        exc.title,
        exc.detail,
        headers if isinstance(exc, InvalidToken) else None,
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return _error_response(request, 400, "invalid_request", describe_errors(exc.errors()))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    title = _HTTP_TITLES.get(exc.status_code, "invalid_request")
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"No such endpoint: {request.method} {request.url.path} (see /docs)"
    return _error_response(request, exc.status_code, title, detail, exc.headers)


class CatchAllErrors:
    """The last resort: an unexpected error becomes a 500 ApiError with a logged request id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            request_id = uuid.uuid4().hex[:16]
            log.exception("unexpected error, request id %s", request_id)
            if started:
                raise
            request = Request(scope)
            detail = (
                f"Internal server error (request id {request_id}); the server log has the "
                "details under this id"
            )
            response = _error_response(request, 500, "internal_error", detail)
            response.headers["X-Request-ID"] = request_id
            await response(scope, receive, send)


def _openapi(app: FastAPI, settings: Settings) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for model in BODY_MODELS:
        body = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(body.pop("$defs", {}))
        schemas[model.__name__] = body
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            operation.get("responses", {}).pop("422", None)
    flows = components.get("securitySchemes", {}).get("oauth2_implicit", {}).get("flows", {})
    if "implicit" in flows:
        flows["implicit"]["authorizationUrl"] = settings.oauth_authorization_url
    app.openapi_schema = schema
    return schema


def create_app(
    runtime: Runtime | None = None, settings: Settings | None = None, *, with_worker: bool = False
) -> FastAPI:
    """The ASGI app. Without a runtime, the lifespan builds one from the settings.

    ``with_worker`` runs a mirror worker inside the API process (the embedded default).
    """
    settings = settings or (runtime.settings if runtime else get_settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = None
        if getattr(app.state, "runtime", None) is None:
            owned = app.state.runtime = Runtime.build(settings)
        worker = Worker(app.state.runtime) if with_worker else None
        task = asyncio.create_task(worker.run()) if worker else None
        try:
            yield
        finally:
            if worker is not None and task is not None:
                worker.stop()
                await task
            if owned is not None:
                await owned.close()

    app = FastAPI(
        title="orgmirror",
        version=__version__,
        description="Organization-level container registry mirroring with Quay's org-mirror API.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.runtime = runtime
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_middleware(CatchAllErrors)
    app.include_router(mirror.router)
    app.include_router(organizations.router)
    app.include_router(health.router)
    app.include_router(docs.build_router(app.title))
    app.openapi = lambda: _openapi(app, settings)  # type: ignore[method-assign]
    return app
