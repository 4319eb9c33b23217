"""What the Harbor and Quay emulators share: a real registry behind a /v2 proxy, a token realm,
a request log, fault injection, and fast seeding.

An emulator is one ASGI app on a loopback port (`AsgiServer`) in front of its own real
`docker-registry` (token auth). It answers three kinds of requests:

- its product's REST API (`/api/...`), computed from what really is in the registry — the
  repository list is the registry's catalog, never a table kept on the side;
- the token realm (`TokenService`), which the registry's `auth.token.realm` points at, so a
  client's distribution token flow runs for real against the real registry;
- everything else under `/v2/`, forwarded to the registry as is: every method, bodies streamed
  both ways, every header (`WWW-Authenticate` included), `Location` rewritten from the
  registry's URL to the emulator's so uploads keep going through the emulator.

Tests steer it with `faults` (forced answers, hangs, stripped headers, delays; each rule for
the next N matching requests or for ever) and read `requests`, the emulator's own log of
(method, path, query, status). Only the registry's catalog requests made by the emulator itself
(to compute the API answers) are not logged.

`BackdoorAuth` signs tokens directly with the realm's key (no realm round trip, no 401s): it is
how the emulator lists the registry and how tests seed it fast (`seed_many`).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Awaitable, Callable, Collection, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, Router
from starlette.types import Message, Receive, Scope, Send

from tests.support.asgi_server import AsgiServer
from tests.support.certs import ServerCert, SigningKey
from tests.support.images import make_image, upload_image
from tests.support.registry_auth import AuthArg
from tests.support.registry_server import RegistryServer, TokenAuth
from tests.support.tokenauth import Scope as TokenScope
from tests.support.tokenauth import TokenIssuer, TokenService

# Hop-by-hop headers (RFC 9110 §7.6.1) and Host are the proxy's own business.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
    }
)
_REPO_PATH = re.compile(r"^/v2/(?P<name>.+?)/(?:blobs|manifests|tags)/")

Policy = Callable[[str | None, str | None, TokenScope | None], Collection[str] | None]


@dataclass(frozen=True)
class LoggedRequest:
    """One request the emulator answered (`status` None: it never answered, see `hang`)."""

    method: str
    path: str
    query: str
    status: int | None


@dataclass
class FaultRule:
    """What to do with the next `remaining` requests (None: all) matching `method`/`path`."""

    path: re.Pattern[str]
    method: str | None
    remaining: int | None
    status: int | None = None
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    hang: bool = False
    strip: frozenset[str] = frozenset()
    delay: float = 0.0

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and bool(self.path.fullmatch(path))


class Faults:
    """Rules the emulator applies before its normal handling; the first matching rule wins.

    `path` is a regex matched (`re.fullmatch`) against the request path without query string,
    e.g. `r"/v2/proj/app/tags/list"` or `r"/api/v2\\.0/projects/.*"`.
    """

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()

    def respond(
        self,
        path: str,
        status: int,
        *,
        times: int | None = 1,
        method: str | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes | str | object = b"",
    ) -> FaultRule:
        """Answer `status` (with `headers` and `body`: bytes, text, or JSON for anything
        else) instead of the real answer: `respond(r"/v2/.*", 503, times=2)`,
        `respond(path, 429, headers={"Retry-After": "1"})`, a 307 with a `Location`…"""
        if isinstance(body, bytes | str):
            data = body.encode() if isinstance(body, str) else body
            extra: tuple[tuple[str, str], ...] = ()
        else:
            data = json.dumps(body).encode()
            extra = (("Content-Type", "application/json"),)
        rule = self._rule(path, method, times)
        rule.status, rule.body = status, data
        rule.headers = extra + tuple((headers or {}).items())
        return self._add(rule)

    def hang(
        self, path: str = ".*", *, times: int | None = None, method: str | None = None
    ) -> FaultRule:
        """Accept the request and never answer (until the emulator stops)."""
        rule = self._rule(path, method, times)
        rule.hang = True
        return self._add(rule)

    def strip_headers(
        self, path: str, *names: str, times: int | None = None, method: str | None = None
    ) -> FaultRule:
        """Pass the request on but drop these response headers, e.g. Docker-Content-Digest."""
        rule = self._rule(path, method, times)
        rule.strip = frozenset(n.lower() for n in names)
        return self._add(rule)

    def delay(
        self, path: str, seconds: float, *, times: int | None = 1, method: str | None = None
    ) -> FaultRule:
        """Answer normally, but only after `seconds`."""
        rule = self._rule(path, method, times)
        rule.delay = seconds
        return self._add(rule)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    @staticmethod
    def _rule(path: str, method: str | None, times: int | None) -> FaultRule:
        if times is not None and times < 1:
            raise ValueError("times must be at least 1 (or None for every request)")
        return FaultRule(re.compile(path), method.upper() if method else None, times)

    def _add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            self._rules.append(rule)
        return rule

    def take(self, method: str, path: str) -> FaultRule | None:
        """The rule for this request, consuming one of its uses."""
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, path):
                    if rule.remaining is not None:
                        rule.remaining -= 1
                        if rule.remaining == 0:
                            self._rules.remove(rule)
                    return rule
        return None


def scope_for_request(request: httpx.Request) -> list[TokenScope]:
    """Every scope a request to the registry needs, with every action (the backdoor is root)."""
    path = request.url.path
    if path.rstrip("/") == "/v2/_catalog":
        return [TokenScope("registry", "catalog", ("*",))]
    match = _REPO_PATH.match(path)
    if match is None:
        return []
    scopes = [TokenScope("repository", match["name"], ("pull", "push", "delete"))]
    if source := request.url.params.get("from"):
        scopes.append(TokenScope("repository", source, ("pull",)))
    return scopes


class BackdoorAuth(httpx.Auth):
    """Sign, for each request, a token granting exactly what it needs on the registry."""

    def __init__(self, issuer: TokenIssuer, service: str, subject: str = "emulator") -> None:
        self.issuer = issuer
        self.service = service
        self.subject = subject
        self._cache: dict[tuple[TokenScope, ...], str] = {}

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        scopes = tuple(scope_for_request(request))
        token = self._cache.get(scopes)
        if token is None:
            token = self.issuer.issue(self.subject, self.service, scopes)
            self._cache[scopes] = token
        request.headers["Authorization"] = f"Bearer {token}"
        yield request


async def seed_many(
    client: httpx.AsyncClient,
    registry: RegistryServer,
    names: Iterable[str],
    *,
    tag: str = "latest",
    auth: AuthArg = None,
) -> str:
    """Put one tiny image as `name:tag` into every repository of `registry`, fast (1,000
    repositories in well under a second). Returns the manifest digest, the same everywhere.

    The first repository is pushed over the API (the registry validates it); the others are
    written as distribution's filesystem driver lays a repository out — the link files under
    `repositories/<name>/_layers` and `_manifests`, pointing at the blobs already stored. Over
    HTTP even cross-repository mounts cost three requests and ≈ 10 ms per repository. The
    registry keeps no cache (no `storage.cache` configured), so it serves the copies at once:
    catalog, tags, manifests and blobs, as `test_emulators.py` checks.
    """
    first, *rest = list(names)
    image = make_image(kind="docker", layers=1, layer_size=64)
    digest = await upload_image(client, registry.url, first, image, tag, auth=auth)
    root = registry.storage_dir / "docker" / "registry" / "v2" / "repositories"
    links = [
        (path.relative_to(root / first), path.read_bytes())
        for path in (root / first).rglob("link")
        if "_uploads" not in path.parts
    ]
    for name in rest:
        for relative, content in links:
            target = root / name / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
    return digest


def json_response(
    body: object, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """Compact JSON plus a newline, as Go's encoder and Flask's jsonify both write it."""
    return Response(
        json.dumps(body, separators=(",", ":")) + "\n",
        status_code=status,
        headers=dict(headers or {}),
        media_type="application/json; charset=utf-8",
    )


@dataclass
class _Loop:
    """The uvicorn thread's event loop and the proxy's client living on it."""

    loop: asyncio.AbstractEventLoop | None = None
    client: httpx.AsyncClient | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class Emulator:
    """Base of `HarborEmulator` and `QuayEmulator`; subclasses give `token_path`, `service`,
    `issuer_name`, the realm `policy` and their API `routes()`.

    Lifecycle: `start()` binds the emulator's port first (the registry's realm must name it),
    then starts the registry; `stop()` releases hung requests and stops both (`with
    Emulator(...) as e:`).
    """

    token_path = "/token"
    issuer_name = "emulator-token-issuer"

    def __init__(
        self,
        signing_key: SigningKey,
        *,
        workdir: Path | None = None,
        tls: ServerCert | None = None,
    ) -> None:
        self._owns_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="emulator-", dir=_fast_tmp()))
        self.signing_key = signing_key
        self.tls = tls
        self.issuer = TokenIssuer(signing_key, self.issuer_name)
        self.faults = Faults()
        self.requests: list[LoggedRequest] = []
        self._released = threading.Event()
        self._hung: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self._loop = _Loop()
        self._router: Router | None = None
        self._server = AsgiServer(_RawAsgi(self._asgi), tls=tls)
        self._registry: RegistryServer | None = None
        self.tokens: TokenService = TokenService(self.issuer, "pending", self._policy)

    # --- subclass hooks ------------------------------------------------------------------

    @property
    def service(self) -> str:
        raise NotImplementedError

    def _policy(
        self, user: str | None, password: str | None, scope: TokenScope | None
    ) -> Collection[str] | None:
        raise NotImplementedError

    def routes(self) -> list[BaseRoute]:
        raise NotImplementedError

    # --- public surface --------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def host(self) -> str:
        """`127.0.0.1:PORT`: what skopeo references and authfiles name."""
        return self._server.host

    @property
    def realm(self) -> str:
        return f"{self.url}{self.token_path}"

    @property
    def registry(self) -> RegistryServer:
        """The real registry behind `/v2/` (reach it directly only to seed or to inspect)."""
        if self._registry is None:
            raise RuntimeError("emulator not started")
        return self._registry

    def backdoor(self) -> BackdoorAuth:
        """httpx auth for direct requests to `registry.url` with every right."""
        return BackdoorAuth(self.issuer, self.service)

    def start(self) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._router = Router(routes=self._all_routes())
        self._server.start()
        try:
            self.tokens.service = self.service
            token = TokenAuth(
                realm=self.realm,
                service=self.service,
                issuer=self.issuer.issuer,
                rootcertbundle=self.signing_key.cert_file,
            )
            self._registry = RegistryServer(self.workdir / "registry", token=token).start()
        except BaseException:
            self._server.stop()
            raise
        return self

    def stop(self, *, wait: bool = False) -> None:
        """Release hung requests, close the proxy's client, stop the registry; the HTTP server
        stops in the background (`wait=True` joins it)."""
        with self._loop.lock:
            self._released.set()
            hung, self._hung = self._hung, []
        for hung_loop, event in hung:
            if not hung_loop.is_closed():
                hung_loop.call_soon_threadsafe(event.set)
        with self._loop.lock:
            loop, client = self._loop.loop, self._loop.client
            self._loop.client = None
        if loop is not None and client is not None and loop.is_running():
            future = asyncio.run_coroutine_threadsafe(client.aclose(), loop)
            try:
                future.result(timeout=5)
            except Exception:  # closing at teardown must not mask the test's outcome
                pass
        # uvicorn needs ≈ 0.15 s to notice `should_exit` and drain (two fixed 0.1 s sleeps);
        # the port is ours alone, so let it finish in the background unless told to wait.
        stopper = threading.Thread(target=self._server.stop, daemon=True)
        stopper.start()
        if wait:
            stopper.join()
        if self._registry is not None:
            self._registry.stop()
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def count(
        self, method: str | None = None, path: str | None = None, *, status: int | None = None
    ) -> int:
        """How many logged requests match `method`, the `path` regex (fullmatch) and `status`."""
        return len(self.matching(method, path, status=status))

    def matching(
        self, method: str | None = None, path: str | None = None, *, status: int | None = None
    ) -> list[LoggedRequest]:
        pattern = re.compile(path) if path is not None else None
        return [
            entry
            for entry in list(self.requests)
            if (method is None or entry.method == method.upper())
            and (pattern is None or pattern.fullmatch(entry.path))
            and (status is None or entry.status == status)
        ]

    async def _repositories(self) -> list[str]:
        """Every repository name in the registry (its catalog, all pages, lexical order).
        Runs on the server's loop only (API handlers); tests use `images.catalog` with
        `backdoor()` auth on `registry.url`."""
        client = self._proxy_client()
        url: str | None = f"{self.registry.url}/v2/_catalog?n=1000"
        names: list[str] = []
        while url is not None:
            response = await client.get(url, auth=self.backdoor())
            response.raise_for_status()
            names += response.json().get("repositories") or []
            link = response.links.get("next", {}).get("url")
            url = str(response.url.join(link)) if link else None
        return names

    # --- ASGI plumbing --------------------------------------------------------------------

    def _all_routes(self) -> list[BaseRoute]:
        return [
            Route(self.token_path, self._token_endpoint, methods=["GET"]),
            *self.routes(),
            Route("/v2/{rest:path}", _RawAsgi(self._proxy)),
        ]

    async def _token_endpoint(self, request: Request) -> Response:
        return await self.tokens.endpoint(request)

    def _proxy_client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        with self._loop.lock:
            if self._loop.client is None or self._loop.loop is not loop:
                self._loop.loop = loop
                self._loop.client = httpx.AsyncClient(
                    timeout=httpx.Timeout(60.0), follow_redirects=False, trust_env=False
                )
            return self._loop.client

    async def _asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        method: str = scope["method"]
        path: str = scope["path"]
        query = scope.get("query_string", b"").decode("latin-1")

        rule = self.faults.take(method, path)
        strip: frozenset[str] = rule.strip if rule else frozenset()

        async def logging_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                if strip:
                    message = dict(message)
                    message["headers"] = [
                        (k, v) for k, v in message["headers"] if k.decode().lower() not in strip
                    ]
                self.requests.append(LoggedRequest(method, path, query, message["status"]))
            await send(message)

        if rule is not None and rule.hang:
            self.requests.append(LoggedRequest(method, path, query, None))
            await self._wait_released()
            await _send_plain(send, 503, b"emulator stopped")
            return
        if rule is not None and rule.delay:
            await asyncio.sleep(rule.delay)
        if rule is not None and rule.status is not None:
            await _send_plain(logging_send, rule.status, rule.body, rule.headers)
            return
        assert self._router is not None
        await self._router(scope, receive, logging_send)

    async def _wait_released(self) -> None:
        """Block a hung request until `stop()` (an asyncio.Event set from the test's thread)."""
        event = asyncio.Event()
        with self._loop.lock:
            if self._released.is_set():
                return
            self._hung.append((asyncio.get_running_loop(), event))
        await event.wait()

    async def _proxy(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Forward one request to the registry and stream the answer back."""
        request = Request(scope, receive)
        client = self._proxy_client()
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP]
        has_body = "content-length" in request.headers or "transfer-encoding" in request.headers
        upstream_request = client.build_request(
            request.method,
            self.registry.url
            + scope["raw_path"].decode("latin-1")
            + (f"?{q}" if (q := scope.get("query_string", b"").decode("latin-1")) else ""),
            headers=headers,
            content=request.stream() if has_body else None,
        )
        upstream = await client.send(upstream_request, stream=True)
        try:
            response_headers = [
                (k.encode("latin-1"), self._rewrite(k, v).encode("latin-1"))
                for k, v in upstream.headers.multi_items()
                if k.lower() not in _HOP_BY_HOP
            ]
            await send(
                {
                    "type": "http.response.start",
                    "status": upstream.status_code,
                    "headers": response_headers,
                }
            )
            async for chunk in upstream.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await upstream.aclose()

    def _rewrite(self, name: str, value: str) -> str:
        if name.lower() == "location" and value.startswith(self.registry.url):
            return self.url + value[len(self.registry.url) :]
        return value


async def _send_plain(
    send: Callable[[Message], Awaitable[None]],
    status: int,
    body: bytes,
    headers: Iterable[tuple[str, str]] = (),
) -> None:
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    if not any(k == b"content-type" for k, _ in raw):
        raw.append((b"content-type", b"text/plain; charset=utf-8"))
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _fast_tmp() -> str | None:
    """/dev/shm when there is one: seeding writes thousands of small files, which costs
    ≈ 1 ms each on this machine's disk and ≈ 0.05 ms in tmpfs."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


class _RawAsgi:
    """Mark a bound method as a raw ASGI app (Starlette would call a method with a Request)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
