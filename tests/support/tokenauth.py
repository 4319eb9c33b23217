"""A distribution-compatible token server (the `auth.token` realm) for tests.

Harbor, Quay and GHCR all put their registry behind the distribution token flow: `/v2/`
answers 401 with `WWW-Authenticate: Bearer realm=…,service=…,scope=…`, the client fetches a JWT
from the realm (optionally with Basic credentials) and retries with `Authorization: Bearer`.
This module is that realm, with access decided by a policy callable so emulators can grant or
deny pull/push per repository.

How distribution 2.8 checks the JWT (`registry/auth/token/token.go`, verified against the
installed 2.8.2 by `tests/support_tests/test_tokenauth.py`):

- claims `iss` (must equal `auth.token.issuer`), `aud` (a plain string equal to the service —
  2.8 unmarshals it into a `string`, so a JSON list is a *malformed* token), `exp`/`nbf` with
  60 s leeway, `access: [{type, name, actions}]`;
- the signing key comes from, in this order, the `x5c` header (a chain verified against
  `rootcertbundle`), a `jwk` header, or `kid`: a libtrust fingerprint looked up among the
  public keys of the certificates in `rootcertbundle`. The fingerprint is the SHA-256 of the
  DER SubjectPublicKeyInfo, truncated to 30 bytes (240 bits), base32 without padding, as 12
  groups of 4 characters joined by ':' (`libtrust.keyIDFromCryptoKey`);
- ES256 signatures are the JWS raw `r || s` form (32 bytes each), not DER.

`kid` is the default here (it is what Harbor and docker_auth send); `x5c` works too.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import fnmatch
import hashlib
import json
import secrets
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Literal, Self

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.asgi_server import AsgiServer
from tests.support.certs import SigningKey

ANONYMOUS = None


@dataclass(frozen=True)
class Scope:
    """One requested or granted resource scope, e.g. `repository:myorg/app:pull,push`."""

    type: str
    name: str
    actions: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Self:
        """Split `type:name:actions`; the name may itself contain ':' (a host:port prefix)."""
        kind, _, rest = text.partition(":")
        name, _, actions = rest.rpartition(":")
        if not kind or not name:
            raise ValueError(f"malformed scope {text!r}")
        return cls(kind, name, tuple(a for a in actions.split(",") if a))

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"


# (user or None for anonymous, password or None, requested scope or None for a bare login)
# -> granted actions, or None when the credentials are rejected (the realm answers 401).
Policy = Callable[[str | None, str | None, Scope | None], Collection[str] | None]


def libtrust_key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """The `kid` distribution derives from a trusted certificate's public key."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class TokenIssuer:
    """Signs distribution-compatible JWTs with an EC P-256 key (ES256)."""

    def __init__(
        self,
        signing_key: SigningKey,
        issuer: str = "orgmirror-test-issuer",
        *,
        header: Literal["kid", "x5c"] = "kid",
        ttl: int = 300,
    ) -> None:
        self.signing_key = signing_key
        self.issuer = issuer
        self.header_mode = header
        self.ttl = ttl
        self.key_id = libtrust_key_id(signing_key.key.public_key())

    def _header(self) -> dict[str, object]:
        header: dict[str, object] = {"typ": "JWT", "alg": "ES256"}
        if self.header_mode == "kid":
            header["kid"] = self.key_id
        else:
            der = self.signing_key.cert.public_bytes(serialization.Encoding.DER)
            header["x5c"] = [base64.b64encode(der).decode()]
        return header

    def issue(self, subject: str, audience: str, access: Collection[Scope]) -> str:
        """A signed token granting `access` to `subject` for the registry `audience`."""
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": audience,
            "exp": now + self.ttl,
            "nbf": now - 1,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": [
                {"type": s.type, "name": s.name, "actions": list(s.actions)} for s in access
            ],
        }
        signing_input = ".".join(
            _b64url(json.dumps(part, separators=(",", ":")).encode())
            for part in (self._header(), claims)
        )
        der = self.signing_key.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


@dataclass(frozen=True)
class Rule:
    """Grant `actions` on resources of `type` whose name matches the glob `pattern`.

    `who` is a user name, "*" for any authenticated user, or None for everyone including
    anonymous clients (a public repository).
    """

    who: str | None
    pattern: str
    actions: frozenset[str]
    type: str = "repository"

    def applies(self, user: str | None, scope: Scope) -> bool:
        if self.who is not None and user is None:
            return False
        if self.who not in (None, "*", user):
            return False
        return scope.type == self.type and fnmatch.fnmatchcase(scope.name, self.pattern)


@dataclass
class RulePolicy:
    """A `Policy` from a user table and grant rules; tests mutate it to change access."""

    users: dict[str, str] = field(default_factory=dict)
    rules: list[Rule] = field(default_factory=list)

    def allow(self, who: str | None, pattern: str, *actions: str, type: str = "repository") -> Self:
        self.rules.append(Rule(who, pattern, frozenset(actions), type))
        return self

    def __call__(
        self, user: str | None, password: str | None, scope: Scope | None
    ) -> Collection[str] | None:
        if user is not None and self.users.get(user) != password:
            return None
        if scope is None:
            return ()
        granted = set().union(*(r.actions for r in self.rules if r.applies(user, scope)))
        if "*" in granted:
            return scope.actions
        return tuple(a for a in scope.actions if a in granted)


def member_policy(users: dict[str, str], *, anonymous_pull: bool = False) -> RulePolicy:
    """Every known user may pull, push, delete and list the catalog; anonymous clients may
    pull only if `anonymous_pull` (a public project)."""
    policy = (
        RulePolicy(dict(users)).allow("*", "*", "*").allow("*", "catalog", "*", type="registry")
    )
    if anonymous_pull:
        policy.allow(ANONYMOUS, "*", "pull")
    return policy


@dataclass(frozen=True)
class IssuedToken:
    """What the realm was asked for and what it granted (for "tokens are cached" asserts)."""

    user: str | None
    service: str
    requested: tuple[Scope, ...]
    granted: tuple[Scope, ...]


class TokenService:
    """The realm endpoint: mount `endpoint` at any path (`/service/token`, `/v2/auth`, …)."""

    def __init__(self, issuer: TokenIssuer, service: str, policy: Policy) -> None:
        self.issuer = issuer
        self.service = service
        self.policy = policy
        self.issued: list[IssuedToken] = []

    async def endpoint(self, request: Request) -> Response:
        """`GET realm?service=…&scope=…` with optional Basic auth, per the token spec."""
        try:
            user, password = _basic_credentials(request)
            requested = _requested_scopes(request)
        except ValueError as exc:
            return _error(400, "INVALID_REQUEST", str(exc))
        if self.policy(user, password, None) is None:
            return _error(401, "UNAUTHORIZED", "invalid credentials")
        granted = tuple(self._grant(user, password, scope) for scope in requested)
        service = request.query_params.get("service", self.service)
        self.issued.append(IssuedToken(user, service, requested, granted))
        token = self.issuer.issue(user or "", service, [g for g in granted if g.actions])
        return JSONResponse(_token_body(token, self.issuer.ttl))

    def _grant(self, user: str | None, password: str | None, scope: Scope) -> Scope:
        actions = self.policy(user, password, scope) or ()
        return Scope(scope.type, scope.name, tuple(a for a in scope.actions if a in actions))

    def app(self, path: str = "/token") -> Starlette:
        """A standalone ASGI app serving only the realm at `path`."""
        return Starlette(routes=[Route(path, self.endpoint, methods=["GET"])])


def _basic_credentials(request: Request) -> tuple[str | None, str | None]:
    header = request.headers.get("authorization")
    if not header:
        return ANONYMOUS, None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        raise ValueError("only Basic credentials are accepted")
    try:
        user, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError("malformed Basic credentials") from exc
    if not sep:
        raise ValueError("malformed Basic credentials")
    return user, password


def _requested_scopes(request: Request) -> tuple[Scope, ...]:
    # Clients repeat `scope=` (cross-repository mounts); some space-separate them instead.
    texts = [t for value in request.query_params.getlist("scope") for t in value.split()]
    return tuple(Scope.parse(text) for text in texts)


def _token_body(token: str, ttl: int) -> dict[str, object]:
    issued_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return {"token": token, "access_token": token, "expires_in": ttl, "issued_at": issued_at}


def _error(status: int, code: str, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Basic realm="orgmirror-test"'} if status == 401 else None
    body = {"errors": [{"code": code, "message": message}]}
    return JSONResponse(body, status_code=status, headers=headers)


class TokenServer:
    """One realm on a loopback port serving any number of registries, told apart by the
    `service` parameter — so a session can share it while each test registers its own
    service (and policy). `realm` goes into the registry config."""

    def __init__(self, issuer: TokenIssuer, path: str = "/token") -> None:
        self.issuer = issuer
        self.path = path
        self.services: dict[str, TokenService] = {}
        app = Starlette(routes=[Route(path, self._dispatch, methods=["GET"])])
        self._server = AsgiServer(app)

    @property
    def realm(self) -> str:
        return f"{self._server.url}{self.path}"

    def add_service(
        self, service: str, policy: Policy, issuer: TokenIssuer | None = None
    ) -> TokenService:
        """Serve tokens for `service`, signed by the server's issuer unless told otherwise."""
        self.services[service] = TokenService(issuer or self.issuer, service, policy)
        return self.services[service]

    def remove_service(self, service: str) -> None:
        self.services.pop(service, None)

    async def _dispatch(self, request: Request) -> Response:
        service = self.services.get(request.query_params.get("service", ""))
        if service is None:
            return _error(400, "INVALID_REQUEST", "unknown service")
        return await service.endpoint(request)

    def start(self) -> Self:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
