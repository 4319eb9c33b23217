"""A Quay emulator: the v1 repository-listing API, organization and user look-ups, and the
`/v2/auth` token realm, in front of a real registry (see `emulator_common`).

Written from Quay's public API reference (listRepos, getOrganization, getUserInformation) and
its source (`endpoints/api/repository.py`, `data/model/repository.py`):

- `GET /api/v1/repository?namespace=&public=&starred=&next_page=` → `{"repositories": [{
  "namespace", "name", "description", "is_public", "kind": "image", "state": "NORMAL",
  "is_starred"}], "next_page": token}`; 100 repositories per page (`page_size` changes it),
  `next_page` only while more follow. The token is opaque; an unknown one restarts at the
  first page (Quay ignores a token it cannot decrypt). Paging is keyset-style (the token
  names where the next page starts), names in lexical order. One of namespace, starred or
  public is required (400 otherwise). An anonymous caller sees nothing unless `public=true`,
  and then only public repositories; an authenticated caller sees the repositories of
  namespaces it belongs to (its own user namespace, its organizations) plus, with
  `public=true`, public ones. An unknown namespace is simply an empty list.
- Auth on `/api/` is `Authorization: Bearer <OAuth token>`; an unknown token → 401.
- `GET /api/v1/organization/{orgname}` → `{"name", "avatar", "is_admin", "is_member"}`, 404
  for anything but an organization; `GET /api/v1/users/{username}` → `{"username", "avatar",
  "super_user"}`, 404 for an organization or an unknown name.
- Errors are Quay's ApiError: `{"detail", "error_message", "error_type", "title", "type",
  "status"}`.
- `/v2/auth` is the realm (service = the emulator's host, issuer `quay`). Basic credentials
  are `user:password`, `$oauthtoken:<token>`, or a robot `ns+name:<token>` (add robots as
  users who are members of the organization). Members pull/push/delete, everyone pulls
  public repositories.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tests.support.certs import ServerCert, SigningKey
from tests.support.emulator_common import Emulator, json_response
from tests.support.tokenauth import Scope

QUAY_PAGE_SIZE = 100
OAUTH_USER = "$oauthtoken"


@dataclass
class QuayOrg:
    name: str
    members: set[str] = field(default_factory=set)
    admins: set[str] = field(default_factory=set)


class QuayEmulator(Emulator):
    """Configure with `add_user`, `add_token`, `add_org`, `set_public`; seed through
    `registry.url` with `backdoor()` auth, or through `url` with real credentials."""

    token_path = "/v2/auth"
    issuer_name = "quay"

    def __init__(
        self,
        signing_key: SigningKey,
        *,
        workdir: Path | None = None,
        tls: ServerCert | None = None,
        page_size: int = QUAY_PAGE_SIZE,
    ) -> None:
        self.users: dict[str, str] = {}
        self.oauth_tokens: dict[str, str] = {}
        self.orgs: dict[str, QuayOrg] = {}
        self.public_namespaces: set[str] = set()
        self.visibility: dict[str, bool] = {}
        self.page_size = page_size
        self._page_tokens: dict[str, str] = {}
        super().__init__(signing_key, workdir=workdir, tls=tls)

    @property
    def service(self) -> str:
        return self.host

    # --- configuration --------------------------------------------------------------------

    def add_user(self, name: str, password: str | None = None) -> None:
        self.users[name] = password if password is not None else secrets.token_urlsafe(12)

    def add_token(self, user: str, token: str | None = None) -> str:
        """An OAuth application token acting as `user`; returns it."""
        if user not in self.users:
            self.add_user(user)
        value = token or secrets.token_urlsafe(24)
        self.oauth_tokens[value] = user
        return value

    def add_org(self, name: str, *, members: Collection[str] = (), public: bool = False) -> QuayOrg:
        """An organization; `public=True` makes its repositories public by default."""
        org = QuayOrg(name, set(members), set())
        self.orgs[name] = org
        if public:
            self.public_namespaces.add(name)
        return org

    def set_public(self, repository: str, public: bool = True) -> None:
        """Visibility of one repository (`ns/name`), overriding its namespace's default."""
        self.visibility[repository] = public

    def is_public(self, repository: str) -> bool:
        namespace = repository.partition("/")[0]
        return self.visibility.get(repository, namespace in self.public_namespaces)

    def is_member(self, user: str | None, namespace: str) -> bool:
        if user is None:
            return False
        org = self.orgs.get(namespace)
        return user in org.members if org else user == namespace and user in self.users

    # --- token realm ----------------------------------------------------------------------

    def _login(self, user: str | None, password: str | None) -> tuple[bool, str | None]:
        if user is None:
            return True, None
        if user == OAUTH_USER:
            owner = self.oauth_tokens.get(password or "")
            return owner is not None, owner
        return self.users.get(user) == password, user

    def _policy(
        self, user: str | None, password: str | None, scope: Scope | None
    ) -> Collection[str] | None:
        valid, who = self._login(user, password)
        if not valid:
            return None
        if scope is None or scope.type != "repository":
            return ()
        namespace, slash, _ = scope.name.partition("/")
        if not slash:
            return ()
        if self.is_member(who, namespace):
            return ("pull", "push", "delete", "*")
        return ("pull",) if self.is_public(scope.name) else ()

    # --- REST API -------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/api/v1/repository", self._list_repositories, methods=["GET"]),
            Route("/api/v1/organization/{orgname}", self._organization, methods=["GET"]),
            Route("/api/v1/users/{username}", self._user, methods=["GET"]),
        ]

    def _api_user(self, request: Request) -> tuple[bool, str | None]:
        header = request.headers.get("authorization")
        if not header:
            return True, None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            return True, None  # Quay's API ignores other schemes: the caller is anonymous
        owner = self.oauth_tokens.get(token.strip())
        return owner is not None, owner

    def _error(self, status: int, error_type: str, message: str) -> Response:
        body = {
            "detail": message,
            "error_message": message,
            "error_type": error_type,
            "title": error_type,
            "type": f"{self.url}/api/v1/error/{error_type}",
            "status": status,
        }
        return json_response(body, status)

    def _invalid_token(self) -> Response:
        return self._error(401, "invalid_token", "The access token is invalid or has expired")

    async def _list_repositories(self, request: Request) -> Response:
        valid, user = self._api_user(request)
        if not valid:
            return self._invalid_token()
        params = request.query_params
        namespace = params.get("namespace") or None
        public = _truthy(params.get("public"))
        starred = _truthy(params.get("starred"))
        if not namespace and not starred and not public:
            return self._error(
                400,
                "invalid_request",
                "namespace, starred or public are required for this API call",
            )
        if starred:
            return self._error(400, "invalid_request", "starred repositories are not emulated")

        visible = [
            name
            for name in await self._repositories()
            if (namespace is None or name.partition("/")[0] == namespace)
            and self._visible(user, name, public)
        ]
        start = self._page_tokens.get(params.get("next_page") or "")
        if start is not None:
            visible = [name for name in visible if name >= start]
        page, rest = visible[: self.page_size], visible[self.page_size :]
        body: dict[str, object] = {
            "repositories": [
                {
                    "namespace": name.partition("/")[0],
                    "name": name.partition("/")[2],
                    "description": None,
                    "is_public": self.is_public(name),
                    "kind": "image",
                    "state": "NORMAL",
                    "is_starred": False,
                }
                for name in page
            ]
        }
        if rest:
            token = secrets.token_urlsafe(32)
            self._page_tokens[token] = rest[0]
            body["next_page"] = token
        return json_response(body)

    def _visible(self, user: str | None, name: str, public: bool) -> bool:
        if user is None and not public:
            return False
        if self.is_member(user, name.partition("/")[0]):
            return True
        return public and self.is_public(name)

    async def _organization(self, request: Request) -> Response:
        valid, user = self._api_user(request)
        if not valid:
            return self._invalid_token()
        org = self.orgs.get(request.path_params["orgname"])
        if org is None:
            return self._error(404, "not_found", "Not Found")
        return json_response(
            {
                "name": org.name,
                "avatar": _avatar(org.name, "org"),
                "is_admin": user in org.admins,
                "is_member": user in org.members,
            }
        )

    async def _user(self, request: Request) -> Response:
        valid, _ = self._api_user(request)
        if not valid:
            return self._invalid_token()
        name = request.path_params["username"]
        if name not in self.users or name in self.orgs or "+" in name:
            return self._error(404, "not_found", "Not Found")
        return json_response(
            {"username": name, "avatar": _avatar(name, "user"), "super_user": False}
        )


def _truthy(value: str | None) -> bool:
    """Quay's `util.parsing.truthy_bool`: anything but a few spellings of false is true."""
    return value is not None and value not in {"false", "False", "0", "FALSE", "", "null"}


def _avatar(name: str, kind: str) -> dict[str, str]:
    return {"name": name, "hash": secrets.token_hex(16), "color": "#969696", "kind": kind}
