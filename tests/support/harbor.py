"""A Harbor emulator: the v2.0 repository-listing API and the token realm, in front of a real
registry (see `emulator_common` for the proxy, the log and the faults).

Written from Harbor's public API (swagger `api/v2.0/swagger.yaml`, handler
`server/v2.0/handler/repository.go`, `base.go`, `lib/http/error.go`):

- `GET /api/v2.0/projects/{project_name}/repositories?page=&page_size=&q=` with Basic auth
  (or none). `page` defaults to 1, `page_size` to 10, at most 100 (more, or a non-integer,
  is a go-swagger validation failure: 422 UNPROCESSABLE_ENTITY). Items are
  `{"id", "project_id", "name": "project/repo", "description", "artifact_count", "pull_count",
  "creation_time", "update_time"}`; headers `X-Total-Count` and
  `Link: <path?page=N&page_size=M>; rel="prev" , <…>; rel="next"` (relative URL, the query
  unescaped, " , " between links, only the links that exist). `q=name=~text` (contains) and
  `q=name=text` (exact) filter by the full name.
- Errors are `{"errors":[{"code": …, "message": …}]}` with `Content-Type: application/json;
  charset=utf-8`: bad Basic credentials → 401 UNAUTHORIZED; a private project without
  credentials → 401, with credentials but no membership → 403 FORBIDDEN; an unknown project →
  404 NOT_FOUND "project x not found" (as the swagger documents). Harbor since 2.0.1
  (goharbor/harbor#12016) deliberately answers an unknown project like a private one instead
  — 401 anonymous, 403 authenticated; `unknown_project="hidden"` does that.
  The REST API never sends `WWW-Authenticate`.
- `/service/token` is the realm (service `harbor-registry`, issuer `harbor-token-issuer`):
  members of a project (and the admin) may pull/push/delete in it, anyone may pull from a
  public project, only the admin may list the catalog; bad credentials → 401.
- Repository order: Harbor sorts by `-creation_time` by default, not by name; the emulator
  returns names in reverse lexical order so a client relying on name order would notice.

`send_link=False` drops `Link` (what some reverse proxies do): clients must then keep paging
while pages come back full. `page_size_cap` makes the server return at most that many items
whatever `page_size` asked for.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tests.support.certs import ServerCert, SigningKey
from tests.support.emulator_common import Emulator, json_response
from tests.support.tokenauth import Scope

HARBOR_ADMIN = "admin"
HARBOR_ADMIN_PASSWORD = "Harbor12345"
DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 100
_TIME = "2024-01-01T00:00:00.000Z"


@dataclass
class HarborProject:
    name: str
    project_id: int
    public: bool = False
    members: set[str] = field(default_factory=set)


def harbor_error(status: int, code: str, message: str) -> Response:
    return json_response({"errors": [{"code": code, "message": message}]}, status)


class HarborEmulator(Emulator):
    """Use as a context manager or `start()`/`stop()`; see the module docstring.

    Configure with `add_user`, `add_project(name, public=…, members=…)`; seed through
    `registry.url` with `backdoor()` auth (or through `url` with real credentials).
    """

    token_path = "/service/token"
    issuer_name = "harbor-token-issuer"

    def __init__(
        self,
        signing_key: SigningKey,
        *,
        workdir: Path | None = None,
        tls: ServerCert | None = None,
        admin_password: str = HARBOR_ADMIN_PASSWORD,
        send_link: bool = True,
        page_size_cap: int | None = None,
        unknown_project: Literal["not_found", "hidden"] = "not_found",
    ) -> None:
        self.users: dict[str, str] = {HARBOR_ADMIN: admin_password}
        self.projects: dict[str, HarborProject] = {}
        self.send_link = send_link
        self.page_size_cap = page_size_cap
        self.unknown_project = unknown_project
        super().__init__(signing_key, workdir=workdir, tls=tls)

    @property
    def service(self) -> str:
        return "harbor-registry"

    def add_user(self, name: str, password: str) -> None:
        self.users[name] = password

    def add_project(
        self, name: str, *, public: bool = False, members: Collection[str] = ()
    ) -> HarborProject:
        project = HarborProject(name, len(self.projects) + 1, public, set(members))
        self.projects[name] = project
        return project

    # --- token realm ----------------------------------------------------------------------

    def _policy(
        self, user: str | None, password: str | None, scope: Scope | None
    ) -> Collection[str] | None:
        if user is not None and self.users.get(user) != password:
            return None
        if scope is None:
            return ()
        if scope.type == "registry":
            return scope.actions if user == HARBOR_ADMIN else ()
        project_name, slash, _ = scope.name.partition("/")
        project = self.projects.get(project_name)
        if scope.type != "repository" or project is None or not slash:
            return ()
        if user == HARBOR_ADMIN or (user is not None and user in project.members):
            return ("pull", "push", "delete", "*")
        return ("pull",) if project.public else ()

    # --- REST API -------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        return [
            Route(
                "/api/v2.0/projects/{project_name}/repositories",
                self._list_repositories,
                methods=["GET"],
            )
        ]

    def _authenticate(self, request: Request) -> tuple[bool, str | None]:
        """(credentials acceptable, user or None for anonymous)."""
        header = request.headers.get("authorization")
        if not header:
            return True, None
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False, None
        try:
            user, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False, None
        if not sep or self.users.get(user) != password:
            return False, None
        return True, user

    async def _list_repositories(self, request: Request) -> Response:
        valid, user = self._authenticate(request)
        if not valid:
            return harbor_error(401, "UNAUTHORIZED", "unauthorized")
        name = request.path_params["project_name"]
        project = self.projects.get(name)
        if project is None and self.unknown_project == "not_found":
            return harbor_error(404, "NOT_FOUND", f"project {name} not found")
        allowed = project is not None and (
            project.public or user == HARBOR_ADMIN or (user is not None and user in project.members)
        )
        if not allowed:
            if user is None:
                return harbor_error(401, "UNAUTHORIZED", "unauthorized")
            return harbor_error(403, "FORBIDDEN", "forbidden")
        assert project is not None
        try:
            page, page_size = _paging(request)
        except ValueError as exc:
            return harbor_error(422, "UNPROCESSABLE_ENTITY", f"validation failure list:\n{exc}")

        names = [n for n in await self._repositories() if n.startswith(f"{name}/")]
        names = _apply_q(names, request.query_params.get("q"))
        names.sort(reverse=True)
        total = len(names)
        served = min(page_size, self.page_size_cap or page_size)
        chunk = names[(page - 1) * served : page * served] if served else []
        items = [
            {
                "id": 1000 + index,
                "project_id": project.project_id,
                "name": repo,
                "description": "",
                "artifact_count": 1,
                "pull_count": 0,
                "creation_time": _TIME,
                "update_time": _TIME,
            }
            for index, repo in enumerate(chunk, start=(page - 1) * served)
        ]
        headers = {"X-Total-Count": str(total), "X-Request-Id": "emulated"}
        links = _links(request, total, page, served)
        if links and self.send_link:
            headers["Link"] = links
        return json_response(items, 200, headers)


def _paging(request: Request) -> tuple[int, int]:
    values = {"page": 1, "page_size": DEFAULT_PAGE_SIZE}
    for key in values:
        raw = request.query_params.get(key)
        if raw is None:
            continue
        try:
            values[key] = int(raw)
        except ValueError:
            raise ValueError(f'{key} in query must be of type int64: "{raw}"') from None
    if values["page_size"] > MAX_PAGE_SIZE:
        raise ValueError(f"page_size in query should be less than or equal to {MAX_PAGE_SIZE}")
    if values["page_size"] < 0:
        raise ValueError("page_size in query should be greater than or equal to 0")
    if values["page"] < 1:
        raise ValueError("page in query should be greater than or equal to 1")
    return values["page"], values["page_size"]


def _apply_q(names: list[str], q: str | None) -> list[str]:
    if not q:
        return names
    for term in q.split(","):
        key, _, value = term.partition("=")
        if key.strip() != "name":
            continue
        if value.startswith("~"):
            names = [n for n in names if value[1:] in n]
        else:
            names = [n for n in names if n == value]
    return names


def _links(request: Request, total: int, page: int, page_size: int) -> str:
    """Harbor's `BaseAPI.Links`: relative URLs, unescaped query, joined by " , "."""
    if page_size == 0:
        return ""
    links: list[str] = []
    base_query = dict(parse_qsl(request.url.query, keep_blank_values=True))

    def url(number: int) -> str:
        query = dict(base_query, page=str(number), page_size=str(page_size))
        unescaped = re.sub(r"%([0-9A-Fa-f]{2})", lambda m: chr(int(m[1], 16)), urlencode(query))
        return f"{request.url.path}?{unescaped}"

    if page > 1 and (page - 1) * page_size < total:
        links.append(f'<{url(page - 1)}>; rel="prev"')
    if page_size * page < total:
        links.append(f'<{url(page + 1)}>; rel="next"')
    return " , ".join(links)
