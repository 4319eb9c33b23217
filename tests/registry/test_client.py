"""RegistryClient against real registries: anonymous, htpasswd (Basic), and the token flow of
the emulated Harbor; paging, digests, retries, redirects, TLS, refused and hung servers."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence

import httpx
import pytest

from app.registry.client import RegistryClient, RetryPolicy
from app.registry.errors import (
    RegistryAuthFailed,
    RegistryProtocolError,
    RegistryTimeout,
    RegistryTlsError,
    RegistryUnavailable,
)
from app.registry.http import Endpoint, HttpClients
from app.registry.ssrf import SsrfGuard
from tests.support.certs import CertificateAuthority
from tests.support.emulator_common import seed_many
from tests.support.fixtures import ROBOT_PASSWORD, ROBOT_USER
from tests.support.harbor import HARBOR_ADMIN, HARBOR_ADMIN_PASSWORD, HarborEmulator
from tests.support.images import (
    Kind,
    delete_manifest,
    make_image,
    make_index,
    push_image,
    seed,
    upload_image,
    upload_index,
)
from tests.support.registry_server import RegistryServer, free_port

FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.01, max_delay=5.0)
ALICE = ("alice", "alice-pw-1")
ClientFactory = Callable[..., RegistryClient]


@pytest.fixture
async def make_client() -> AsyncIterator[ClientFactory]:
    """`make_client(retry=…, timeout=…)`: a RegistryClient allowed to reach 127.0.0.1."""
    pools: list[HttpClients] = []

    def build(
        *, retry: RetryPolicy = FAST_RETRY, timeout: httpx.Timeout | None = None
    ) -> RegistryClient:
        pools.append(HttpClients(timeout=timeout) if timeout else HttpClients())
        return RegistryClient(pools[-1], ssrf=SsrfGuard(["127.0.0.1"]), retry=retry)

    yield build
    for pool in pools:
        await pool.aclose()


@pytest.fixture
def client(make_client: ClientFactory) -> RegistryClient:
    return make_client()


@pytest.fixture
def project(harbor: HarborEmulator) -> str:
    """Private Harbor project `proj` with member alice."""
    harbor.add_user(*ALICE)
    harbor.add_project("proj", members={ALICE[0]})
    return "proj"


def harbor_endpoint(
    harbor: HarborEmulator, credentials: tuple[str, str] | None = ALICE
) -> Endpoint:
    user, password = credentials or (None, None)
    return Endpoint(harbor.url, username=user, password=password)


async def seed_harbor(
    registry_client: httpx.AsyncClient,
    harbor: HarborEmulator,
    repos: list[str],
    tags: Sequence[str] | int = 1,
) -> dict[str, dict[str, str]]:
    return await seed(registry_client, harbor.registry.url, repos, tags, auth=harbor.backdoor())


# --- auth ----------------------------------------------------------------------------------------


async def test_anonymous_registry_lists_tags_sorted(
    client: RegistryClient, registry: RegistryServer, registry_client: httpx.AsyncClient
) -> None:
    await seed(registry_client, registry.url, ["myorg/app"], ["v10", "v2", "latest", "a"])

    tags = await client.list_tags(Endpoint(registry.url), "myorg/app")

    assert tags == ["a", "latest", "v10", "v2"]


async def test_tags_null_of_a_repository_without_manifests_is_empty(
    client: RegistryClient, registry: RegistryServer, registry_client: httpx.AsyncClient
) -> None:
    digest = await push_image(registry_client, registry.url, "myorg/gone", "v1")
    await delete_manifest(registry_client, registry.url, "myorg/gone", digest)

    assert await client.list_tags(Endpoint(registry.url), "myorg/gone") == []


async def test_basic_registry_is_answered_once_then_credentials_go_up_front(
    client: RegistryClient, auth_registry: RegistryServer, registry_client: httpx.AsyncClient
) -> None:
    await seed(
        registry_client, auth_registry.url, ["myorg/app"], 2, auth=(ROBOT_USER, ROBOT_PASSWORD)
    )
    endpoint = Endpoint(auth_registry.url, username=ROBOT_USER, password=ROBOT_PASSWORD)
    mark = auth_registry.mark()

    first = await client.list_tags(endpoint, "myorg/app")
    second = await client.list_tags(endpoint, "myorg/app")

    assert first == second == ["v1", "v2"]
    assert (
        auth_registry.count_requests("GET", r"/v2/myorg/app/tags/list", status=401, since=mark) == 1
    )
    assert (
        auth_registry.count_requests("GET", r"/v2/myorg/app/tags/list", status=200, since=mark) == 2
    )


async def test_basic_registry_without_credentials_says_they_are_needed(
    client: RegistryClient, auth_registry: RegistryServer
) -> None:
    with pytest.raises(RegistryAuthFailed, match="requires credentials"):
        await client.list_tags(Endpoint(auth_registry.url), "myorg/app")


async def test_basic_registry_with_a_wrong_password_fails_authentication(
    client: RegistryClient, auth_registry: RegistryServer
) -> None:
    endpoint = Endpoint(auth_registry.url, username=ROBOT_USER, password="wrong")

    with pytest.raises(RegistryAuthFailed, match="Authentication failed"):
        await client.list_tags(endpoint, "myorg/app")


async def test_bearer_token_is_fetched_once_per_scope_and_reused(
    client: RegistryClient,
    harbor: HarborEmulator,
    project: str,
    registry_client: httpx.AsyncClient,
) -> None:
    await seed_harbor(registry_client, harbor, ["proj/app", "proj/web"], 2)
    endpoint = harbor_endpoint(harbor)

    assert await client.list_tags(endpoint, "proj/app") == ["v1", "v2"]
    assert await client.list_tags(endpoint, "proj/app") == ["v1", "v2"]
    after_same_repo = len(harbor.tokens.issued)
    await client.list_tags(endpoint, "proj/web")

    assert after_same_repo == 1
    assert [(t.user, [str(s) for s in t.granted]) for t in harbor.tokens.issued] == [
        ("alice", ["repository:proj/app:pull"]),
        ("alice", ["repository:proj/web:pull"]),
    ]
    assert harbor.count("GET", r"/v2/proj/app/tags/list", status=401) == 1


async def test_anonymous_bearer_pull_from_a_public_project(
    client: RegistryClient, harbor: HarborEmulator, registry_client: httpx.AsyncClient
) -> None:
    harbor.add_project("library", public=True)
    await seed_harbor(registry_client, harbor, ["library/busybox"])

    tags = await client.list_tags(harbor_endpoint(harbor, None), "library/busybox")

    assert tags == ["v1"]
    assert [t.user for t in harbor.tokens.issued] == [None]


async def test_token_realm_refusing_the_credentials_is_an_authentication_failure(
    client: RegistryClient, harbor: HarborEmulator, project: str
) -> None:
    endpoint = harbor_endpoint(harbor, ("alice", "wrong"))

    with pytest.raises(RegistryAuthFailed, match="refused the credentials of 'alice'"):
        await client.list_tags(endpoint, "proj/app")


async def test_token_without_access_is_an_authentication_failure(
    client: RegistryClient, harbor: HarborEmulator, project: str
) -> None:
    harbor.add_user("bob", "bob-pw")

    with pytest.raises(RegistryAuthFailed):
        await client.list_tags(harbor_endpoint(harbor, ("bob", "bob-pw")), "proj/app")

    assert harbor.tokens.issued[-1].granted[0].actions == ()


# --- catalog and tags paging -------------------------------------------------------------------


async def test_catalog_follows_link_pages_of_at_most_1000(
    client: RegistryClient, harbor: HarborEmulator, registry_client: httpx.AsyncClient
) -> None:
    harbor.add_project("big")
    names = sorted(f"big/r{i:04d}" for i in range(1050))
    await seed_many(registry_client, harbor.registry, names, auth=harbor.backdoor())

    listed = await client.catalog(harbor_endpoint(harbor, (HARBOR_ADMIN, HARBOR_ADMIN_PASSWORD)))

    assert listed == names
    pages = harbor.matching("GET", r"/v2/_catalog", status=200)
    assert len(pages) == 2
    assert all("n=1000" in page.query for page in pages)
    assert "last=" in pages[1].query


async def test_catalog_pages_reuse_the_catalog_token(
    client: RegistryClient, harbor: HarborEmulator, registry_client: httpx.AsyncClient
) -> None:
    """A second catalog page needs the same `registry:catalog:*` scope as the first: it must
    be sent with the cached token, not anonymously into another 401 and token request."""
    harbor.add_project("big")
    await seed_many(
        registry_client,
        harbor.registry,
        [f"big/r{i:04d}" for i in range(1001)],
        auth=harbor.backdoor(),
    )

    await client.catalog(harbor_endpoint(harbor, (HARBOR_ADMIN, HARBOR_ADMIN_PASSWORD)))

    assert harbor.count("GET", r"/v2/_catalog", status=401) == 1
    assert len(harbor.tokens.issued) == 1


async def test_tags_follow_link_when_the_registry_pages(
    client: RegistryClient,
    harbor: HarborEmulator,
    project: str,
    registry_client: httpx.AsyncClient,
) -> None:
    """distribution 2.8 never pages tags; Harbor and Quay do. The first page is forced."""
    await seed_harbor(registry_client, harbor, ["proj/app"], ["b", "c", "a"])
    harbor.faults.respond(
        r"/v2/proj/app/tags/list",
        200,
        body={"name": "proj/app", "tags": ["z-first-page", "b"]},
        headers={"Link": '</v2/proj/app/tags/list?last=b&n=2>; rel="next"'},
    )

    tags = await client.list_tags(harbor_endpoint(harbor), "proj/app")

    assert tags == ["a", "b", "c", "z-first-page"]
    assert harbor.matching("GET", r"/v2/proj/app/tags/list", status=200)[-1].query == "last=b&n=2"


# --- manifest digests -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "multi"),
    [("docker", False), ("oci", False), ("docker", True), ("oci", True)],
    ids=["docker-manifest", "oci-manifest", "docker-manifest-list", "oci-index"],
)
async def test_manifest_digest_is_the_pushed_digest_by_one_head(
    kind: Kind,
    multi: bool,
    client: RegistryClient,
    registry: RegistryServer,
    registry_client: httpx.AsyncClient,
) -> None:
    if multi:
        pushed = await upload_index(
            registry_client,
            registry.url,
            "myorg/app",
            make_index(kind=kind),
            "v1",
        )
    else:
        pushed = await upload_image(
            registry_client,
            registry.url,
            "myorg/app",
            make_image(kind=kind),
            "v1",
        )
    mark = registry.mark()

    digest = await client.manifest_digest(Endpoint(registry.url), "myorg/app", "v1")

    assert digest == pushed
    assert [(e.method, e.status) for e in registry.requests(since=mark)] == [("HEAD", 200)]


async def test_manifest_digest_falls_back_to_get_and_sha256_without_the_header(
    client: RegistryClient,
    harbor: HarborEmulator,
    project: str,
    registry_client: httpx.AsyncClient,
) -> None:
    pushed = (await seed_harbor(registry_client, harbor, ["proj/app"]))["proj/app"]["v1"]
    harbor.faults.strip_headers(r"/v2/proj/app/manifests/v1", "Docker-Content-Digest")

    digest = await client.manifest_digest(harbor_endpoint(harbor), "proj/app", "v1")

    assert digest == pushed
    assert [e.method for e in harbor.matching(None, r"/v2/proj/app/manifests/v1", status=200)] == [
        "HEAD",
        "GET",
    ]


# --- retries --------------------------------------------------------------------------------------


async def test_503_is_retried_until_it_passes(
    client: RegistryClient,
    harbor: HarborEmulator,
    project: str,
    registry_client: httpx.AsyncClient,
) -> None:
    await seed_harbor(registry_client, harbor, ["proj/app"])
    harbor.faults.respond(r"/v2/proj/app/tags/list", 503, times=2)

    assert await client.list_tags(harbor_endpoint(harbor), "proj/app") == ["v1"]
    assert harbor.count("GET", r"/v2/proj/app/tags/list", status=503) == 2


async def test_gives_up_after_the_policy_attempts_with_registry_unavailable(
    client: RegistryClient, harbor: HarborEmulator, project: str
) -> None:
    harbor.faults.respond(r"/v2/proj/app/tags/list", 502, times=None)

    with pytest.raises(RegistryUnavailable, match="502"):
        await client.list_tags(harbor_endpoint(harbor), "proj/app")

    assert harbor.count("GET", r"/v2/proj/app/tags/list") == FAST_RETRY.attempts


async def test_429_waits_the_retry_after_seconds(
    client: RegistryClient,
    harbor: HarborEmulator,
    project: str,
    registry_client: httpx.AsyncClient,
) -> None:
    await seed_harbor(registry_client, harbor, ["proj/app"])
    harbor.faults.respond(r"/v2/proj/app/tags/list", 429, headers={"Retry-After": "1"})
    started = time.monotonic()

    tags = await client.list_tags(harbor_endpoint(harbor), "proj/app")

    assert tags == ["v1"]
    assert 1.0 <= time.monotonic() - started < 3.0  # the policy alone would wait ≈ 0.01 s


# --- redirects ------------------------------------------------------------------------------------


async def test_same_host_redirect_is_followed(
    client: RegistryClient,
    harbor: HarborEmulator,
    project: str,
    registry_client: httpx.AsyncClient,
) -> None:
    await seed_harbor(registry_client, harbor, ["proj/app"], 2)
    harbor.faults.respond(
        r"/v2/proj/renamed/tags/list",
        307,
        times=None,
        headers={"Location": "/v2/proj/app/tags/list"},
    )

    assert await client.list_tags(harbor_endpoint(harbor), "proj/renamed") == ["v1", "v2"]


async def test_redirect_to_another_host_is_refused_before_any_request_there(
    client: RegistryClient,
    harbor: HarborEmulator,
    project: str,
    registry_client: httpx.AsyncClient,
) -> None:
    await seed_harbor(registry_client, harbor, ["proj/app"])
    other = harbor.registry  # a real server on another port
    mark = other.mark()
    harbor.faults.respond(
        r"/v2/proj/app/tags/list",
        302,
        times=None,
        headers={"Location": f"{other.url}/v2/proj/app/tags/list"},
    )

    with pytest.raises(RegistryProtocolError, match="another host"):
        await client.list_tags(harbor_endpoint(harbor), "proj/app")

    assert other.count_requests(path=r"/v2/proj/app/.*", since=mark) == 0


# --- TLS ------------------------------------------------------------------------------------------


async def test_tls_registry_is_trusted_with_its_ca_file(
    client: RegistryClient,
    tls_registry: RegistryServer,
    tls_ca: CertificateAuthority,
    registry_client: httpx.AsyncClient,
) -> None:
    await seed(registry_client, tls_registry.url, ["myorg/app"], 1)

    endpoint = Endpoint(tls_registry.url, ca_file=str(tls_ca.ca_file))

    assert await client.list_tags(endpoint, "myorg/app") == ["v1"]


async def test_tls_registry_without_its_ca_is_a_tls_error(
    client: RegistryClient, tls_registry: RegistryServer
) -> None:
    with pytest.raises(RegistryTlsError, match="TLS failure"):
        await client.list_tags(Endpoint(tls_registry.url), "myorg/app")


async def test_tls_registry_accepted_with_verify_tls_false(
    client: RegistryClient, tls_registry: RegistryServer, registry_client: httpx.AsyncClient
) -> None:
    await seed(registry_client, tls_registry.url, ["myorg/app"], 1)

    endpoint = Endpoint(tls_registry.url, verify_tls=False)

    assert await client.list_tags(endpoint, "myorg/app") == ["v1"]


# --- refused and hung servers ------------------------------------------------------------------


async def test_connection_refused_is_registry_unavailable_quickly(
    make_client: ClientFactory,
) -> None:
    client = make_client(retry=RetryPolicy(attempts=1))
    started = time.monotonic()

    with pytest.raises(RegistryUnavailable, match="Cannot connect"):
        await client.list_tags(Endpoint(f"http://127.0.0.1:{free_port()}"), "myorg/app")

    assert time.monotonic() - started < 1.0


async def test_server_that_never_answers_is_a_timeout_within_the_configured_timeout(
    make_client: ClientFactory, harbor: HarborEmulator
) -> None:
    harbor.faults.hang()
    client = make_client(retry=RetryPolicy(attempts=1), timeout=httpx.Timeout(0.3))
    started = time.monotonic()

    with pytest.raises(RegistryTimeout, match="Timed out"):
        await client.list_tags(harbor_endpoint(harbor), "proj/app")

    assert time.monotonic() - started < 1.5


async def test_timeouts_are_retried_and_each_attempt_is_bounded(
    make_client: ClientFactory, harbor: HarborEmulator
) -> None:
    harbor.faults.hang()
    client = make_client(retry=RetryPolicy(attempts=2, base_delay=0.01), timeout=httpx.Timeout(0.3))
    started = time.monotonic()

    with pytest.raises(RegistryTimeout):
        await client.list_tags(harbor_endpoint(harbor), "proj/app")

    assert time.monotonic() - started < 2.0
    assert harbor.count("GET", r"/v2/proj/app/tags/list") == 2
