"""Typed dependency aliases: the runtime, the request's session, the caller, the org admin.

Order matters: routes list ``OrgAdmin`` (or ``CurrentUser``) before their ``JsonBody``, so
authentication and authorization are decided before the body is even parsed (SPEC §1.4).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Path, Request
from fastapi.openapi.models import OAuthFlowImplicit, OAuthFlows
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, OAuth2
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import InvalidRequest, InvalidToken
from app.runtime import Runtime
from app.schemas.validation import describe_errors
from app.security import ADMIN_SCOPE, Principal
from app.services.access import OrgAccess, authorize_org_admin, require_admin_scope

M = TypeVar("M", bound=BaseModel)

bearer_scheme = HTTPBearer(
    scheme_name="bearer",
    bearerFormat="JWT",
    description="Paste a token from `orgmirror token` (or your identity provider).",
    auto_error=False,
)
# The authorization URL is replaced with ORGMIRROR_OAUTH_AUTHORIZATION_URL in app.main.
oauth2_scheme = OAuth2(
    scheme_name="oauth2_implicit",
    flows=OAuthFlows(
        implicit=OAuthFlowImplicit(
            authorizationUrl="/oauth/authorize",
            scopes={ADMIN_SCOPE: "Administer organizations and their mirror configs"},
        )
    ),
    auto_error=False,
)


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_session(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    """The request's unit of work: one commit, after the handler, before the response."""
    async with runtime.sessionmaker() as session:
        yield session
        await session.commit()
        if session.info.pop("wake_workers", False):
            runtime.wakeup.set()


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def get_principal(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    _oauth: Annotated[str | None, Depends(oauth2_scheme)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise InvalidToken(
            "Missing bearer token: send 'Authorization: Bearer <token>' "
            "(get one with 'orgmirror token')"
        )
    return runtime.verifier.verify(credentials.credentials)


CurrentUser = Annotated[Principal, Depends(get_principal)]


async def get_admin_principal(principal: CurrentUser) -> Principal:
    require_admin_scope(principal)
    return principal


AdminUser = Annotated[Principal, Depends(get_admin_principal)]
"""A caller whose token holds ``org:admin`` (any org, or none yet)."""


async def get_org_access(
    orgname: Annotated[str, Path(description="The organization's name.")],
    principal: CurrentUser,
    runtime: RuntimeDep,
) -> OrgAccess:
    # A short session of its own: no connection stays checked out during later network I/O.
    async with runtime.sessionmaker() as session:
        return await authorize_org_admin(session, principal=principal, orgname=orgname)


OrgAdmin = Annotated[OrgAccess, Depends(get_org_access)]


def json_body(model: type[M]) -> Any:
    """A dependency that parses the body into ``model`` (400 ApiError naming each field)."""

    async def parse(request: Request) -> M:
        raw = await request.body()
        try:
            return model.model_validate_json(raw or b"")
        except ValidationError as exc:
            raise InvalidRequest(describe_errors(exc.errors())) from None

    return Depends(parse)


def body_doc(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` documenting a body parsed by :func:`json_body`."""
    schema: dict[str, Any] = {"$ref": f"#/components/schemas/{model.__name__}"}
    content: dict[str, Any] = {"schema": schema}
    example = (model.model_config.get("json_schema_extra") or {}).get("example")  # type: ignore[union-attr]
    if example is not None:
        content["example"] = example
    return {"requestBody": {"required": True, "content": {"application/json": content}}}
