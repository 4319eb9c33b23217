"""A Quay emulator: the v1 repository-listing API, organization and user look-ups, and the
`/v2/auth` token realm, in front of a real registry (see `emulator_common`).

Written from Quay's public API reference (listRepos, createRepo, getRepo, getOrganization,
getUserInformation) and its source (`endpoints/api/repository.py`, `endpoints/exception.py`,
`endpoints/v2/v2auth.py`, `data/model/repository.py`):

- `GET /api/v1/repository?namespace=&public=&starred=&next_page=` → `{"repositories": [{
  "namespace", "name", "description", "is_public", "kind": "image", "state": "NORMAL",
  "is_starred"}], "next_page": token}`; 100 repositories per page (`page_size` changes it),
  `next_page` only while more follow. The token is opaque; an unknown one restarts at the
  first page (Quay ignores a token it cannot decrypt). Paging is keyset-style (the token
  names where the next page starts), names in lexical order. One of namespace, starred or
  public is required (400 otherwise). An anonymous caller sees nothing unless `public=true`,
  and then only public repositories; an authenticated caller sees the repositories of
  namespaces it belongs to (its own user namespace, its organizations) plus, with
  `public=true`, public ones. An unknown namespace is simply an empty list. The repositories
  are the registry's catalog plus those created through the API that hold no image yet.
- `POST /api/v1/repository` (createRepo), body `{"repository", "visibility": "public" |
  "private", "namespace"?, "description", "repo_kind"?}`, checked in Quay's order: an invalid
  or missing bearer token → 401; a body that breaks the schema → 400 with jsonschema's message;
  no create permission in the namespace — the token lacks `repo:create`, or its user is not an
  admin or creator of the organization (nor the owner of the user namespace), which is also
  the answer for a namespace that does not exist → 403 `insufficient_scope` "Unauthorized";
  an existing repository → 400 "Repository already exists"; a bad name → 400 "Invalid
  repository name"; else 201 `{"namespace", "name", "kind"}`. Nested names (`a/b`) are
  accepted, as with Quay's `FEATURE_EXTENDED_REPOSITORY_NAMES`.
- `GET /api/v1/repository/{namespace}/{name}` (getRepo) → `{"namespace", "name", "kind",
  "description", "is_public", "is_organization", "state", "can_write", "can_admin", …}` (no
  `tags`); a caller who may not read it (not a member, not public) → 403 (401 anonymous), a
  member asking for a missing one → 404.
- Auth on `/api/` is `Authorization: Bearer <OAuth token>`; an unknown token → 401.
- `GET /api/v1/organization/{orgname}` → `{"name", "avatar", "is_admin", "is_member"}`, 404
  for anything but an organization; `GET /api/v1/users/{username}` → `{"username", "avatar",
  "super_user"}`, 404 for an organization or an unknown name.
- Errors are Quay's ApiError: `{"detail", "error_message", "error_type", "title", "type",
  "status"}`.
- `/v2/auth` is the realm (service = the emulator's host, issuer `quay`). Basic credentials
  are `user:password`, `$oauthtoken:<token>`, or a robot `ns+name:<token>` (add robots as
  users who are members of the organization). Members pull; everyone pulls public
  repositories. Push (with delete) follows `v2auth._authorize_or_downscope_request`: into an
  existing repository for members; into a missing one only for who may create there (org
  admins and creators, a user in their own namespace), and then the realm creates it (Quay's
  push-to-create). A robot is neither by default, so its push into a repository nobody created
  is downscoped to pull and the registry refuses the upload ("unauthorized: access to the
  requested resource is not authorized", as quay.io answers) — why a mirror must create
  repositories through the API first. A repository exists when created (API or push) or
  stored in the registry (seeded through `backdoor()`). `*` is for admins only.
"""

from __future__ import annotations

import json
import re
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
# The OAuth scopes a Quay application token can carry (`auth/scopes.py`).
ALL_SCOPES = frozenset(
    {"repo:read", "repo:write", "repo:admin", "repo:create", "user:read", "user:admin", "org:admin"}
)
# `util/names.py`: REPOSITORY_NAME_EXTENDED_REGEX (nested names, as orgmirror needs them).
EXTENDED_REPOSITORY_NAME = re.compile(
    r"^(?=.{0,255}$)[a-z0-9][\.a-z0-9_-]*(?:/[a-z0-9][\.a-z0-9_-]*)*$"
)
REPO_KINDS = ("image", "application", None)


@dataclass
class QuayOrg:
    name: str
    members: set[str] = field(default_factory=set)
    admins: set[str] = field(default_factory=set)
    creators: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class QuayRepository:
    """A row of Quay's repository table: created through the API or by a creator's push."""

    namespace: str
    name: str
    description: str | None
    kind: str
    created_by: str

    @property
    def full_name(self) -> str:
        return f"{self.namespace}/{self.name}"


class QuayEmulator(Emulator):
    """Configure with `add_user`, `add_token`, `add_org`, `set_public`; seed through
    `registry.url` with `backdoor()` auth, or through `url` with real credentials. Read
    `repositories` (the created ones) to check what the API was asked to create."""

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
        self.token_scopes: dict[str, frozenset[str]] = {}
        self.repositories: dict[str, QuayRepository] = {}
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

    def add_token(
        self, user: str, token: str | None = None, *, scopes: Collection[str] = ALL_SCOPES
    ) -> str:
        """An OAuth application token acting as `user` with `scopes`; returns it."""
        if user not in self.users:
            self.add_user(user)
        value = token or secrets.token_urlsafe(24)
        self.oauth_tokens[value] = user
        self.token_scopes[value] = frozenset(scopes)
        return value

    def add_org(
        self,
        name: str,
        *,
        members: Collection[str] = (),
        admins: Collection[str] = (),
        creators: Collection[str] = (),
        public: bool = False,
    ) -> QuayOrg:
        """An organization; admins and creators (a team with the creator role) are members
        who may also create repositories. `public=True` makes its repositories public by
        default."""
        org = QuayOrg(name, {*members, *admins, *creators}, set(admins), set(creators))
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

    def is_admin(self, user: str | None, namespace: str) -> bool:
        org = self.orgs.get(namespace)
        if org is not None:
            return user in org.admins
        return user is not None and user == namespace and user in self.users

    def can_create(self, user: str | None, namespace: str) -> bool:
        """Quay's CreateRepositoryPermission: org admins and creators, a user at home."""
        org = self.orgs.get(namespace)
        if org is not None:
            return user in org.admins or user in org.creators
        return self.is_admin(user, namespace) and "+" not in namespace

    def exists(self, repository: str) -> bool:
        """Created (API or push-to-create) or stored in the registry (seeded)."""
        return repository in self.repositories or self._stored(repository)

    def _stored(self, repository: str) -> bool:
        root = self.registry.storage_dir / "docker" / "registry" / "v2" / "repositories"
        return (root / repository / "_manifests").is_dir()

    def _create(self, repository: QuayRepository) -> None:
        self.repositories[repository.full_name] = repository

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
        namespace, slash, name = scope.name.partition("/")
        if not slash:
            return ()
        granted: list[str] = []
        if self.is_member(who, namespace) or self.is_public(scope.name):
            granted.append("pull")
        if who is not None and self._writable(who, namespace, name, "push" in scope.actions):
            granted += ["push", "delete"]
        if self.is_admin(who, namespace):
            granted.append("*")
        return granted

    def _writable(self, who: str, namespace: str, name: str, pushing: bool) -> bool:
        if not self.is_member(who, namespace):
            return False
        if self.exists(f"{namespace}/{name}"):
            return True
        if not self.can_create(who, namespace):
            return False  # Quay downscopes: no push into a repository one may not create
        if pushing:  # push-to-create: Quay's realm creates the repository right here
            self._create(QuayRepository(namespace, name, None, "image", who))
        return True

    # --- REST API -------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/api/v1/repository", self._list_repositories, methods=["GET"]),
            Route("/api/v1/repository", self._create_repository, methods=["POST"]),
            Route("/api/v1/repository/{repository:path}", self._get_repository, methods=["GET"]),
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

    def _api_scopes(self, request: Request) -> frozenset[str]:
        _, _, token = request.headers.get("authorization", "").partition(" ")
        return self.token_scopes.get(token.strip(), frozenset())

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

        every = sorted({*await self._repositories(), *self.repositories})
        visible = [
            name
            for name in every
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
                    "description": self._description(name),
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

    def _description(self, repository: str) -> str | None:
        created = self.repositories.get(repository)
        return created.description if created else None

    async def _create_repository(self, request: Request) -> Response:
        valid, user = self._api_user(request)
        if not valid:
            return self._invalid_token()
        if user is None:
            return self._error(401, "invalid_token", "Requires authentication")
        try:
            body = await request.json()
        except ValueError:
            body = None
        if body is None:
            return self._error(400, "invalid_request", "Missing JSON body")
        problem = _schema_problem(body)
        if problem is not None:
            return self._error(400, "invalid_request", problem)
        namespace = body.get("namespace") or user
        if "repo:create" not in self._api_scopes(request) or not self.can_create(user, namespace):
            return self._error(403, "insufficient_scope", "Unauthorized")
        name = body["repository"]
        if self.exists(f"{namespace}/{name}"):
            return self._error(400, "invalid_request", "Repository already exists")
        if not EXTENDED_REPOSITORY_NAME.match(name):
            return self._error(400, "invalid_request", "Invalid repository name")
        kind = body.get("repo_kind") or "image"
        self._create(QuayRepository(namespace, name, body["description"], kind, user))
        self.visibility[f"{namespace}/{name}"] = body["visibility"] == "public"
        return json_response({"namespace": namespace, "name": name, "kind": kind}, 201)

    async def _get_repository(self, request: Request) -> Response:
        valid, user = self._api_user(request)
        if not valid:
            return self._invalid_token()
        full_name = request.path_params["repository"]
        namespace, _, name = full_name.partition("/")
        readable = self.is_member(user, namespace) or (
            self.is_public(full_name) and self.exists(full_name)
        )
        if not readable:
            if user is None:
                return self._error(401, "invalid_token", "Requires authentication")
            return self._error(403, "insufficient_scope", "Unauthorized")
        if not name or not self.exists(full_name):
            return self._error(404, "not_found", "Not Found")
        created = self.repositories.get(full_name)
        return json_response(
            {
                "namespace": namespace,
                "name": name,
                "kind": created.kind if created else "image",
                "description": created.description if created else None,
                "is_public": self.is_public(full_name),
                "is_organization": namespace in self.orgs,
                "is_starred": False,
                "state": "NORMAL",
                "trust_enabled": False,
                "can_write": self.is_member(user, namespace),
                "can_admin": self.is_admin(user, namespace),
            }
        )

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


def _schema_problem(body: object) -> str | None:
    """createRepo's `NewRepo` JSON schema, with jsonschema's messages (Quay returns them)."""
    if not isinstance(body, dict):
        return f"{json.dumps(body)} is not of type 'object'"
    for key in ("repository", "visibility", "description"):
        if key not in body:
            return f"'{key}' is a required property"
    for key in ("repository", "visibility", "description", "namespace"):
        if key in body and not isinstance(body[key], str):
            return f"{json.dumps(body[key])} is not of type 'string'"
    if body["visibility"] not in ("public", "private"):
        return f"{json.dumps(body['visibility'])} is not one of ['public', 'private']"
    if body.get("repo_kind") not in REPO_KINDS:
        return f"{json.dumps(body['repo_kind'])} is not one of ['image', 'application', None]"
    return None


def _truthy(value: str | None) -> bool:
    """Quay's `util.parsing.truthy_bool`: anything but a few spellings of false is true."""
    return value is not None and value not in {"false", "False", "0", "FALSE", "", "null"}


def _avatar(name: str, kind: str) -> dict[str, str]:
    return {"name": name, "hash": secrets.token_hex(16), "color": "#969696", "kind": kind}
