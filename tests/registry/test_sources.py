"""Source adapters (SPEC §4.1) and filters (§4.2) on real listings: the Harbor and Quay
emulators over real registries, and a plain registry's catalog; `verify_source` messages."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from app.registry.client import RegistryClient, RetryPolicy
from app.registry.errors import RegistryAuthFailed, RegistryForbidden
from app.registry.http import Endpoint, HttpClients
from app.registry.sources import (
    NamespaceNotFound,
    Source,
    list_repositories,
    verify_source,
)
from app.registry.ssrf import SsrfGuard
from app.services.filters import RepositoryFilter
from app.statuses import RegistryType
from tests.support.emulator_common import seed_many
from tests.support.harbor import HARBOR_ADMIN, HARBOR_ADMIN_PASSWORD, HarborEmulator
from tests.support.images import seed
from tests.support.quay import QuayEmulator
from tests.support.registry_server import RegistryServer, free_port

ALICE = ("alice", "alice-pw-1")
FAST_RETRY = RetryPolicy(attempts=2, base_delay=0.01)
HARBOR_REPOS = r"/api/v2\.0/projects/proj/repositories"


@pytest.fixture
async def http() -> AsyncIterator[HttpClients]:
    clients = HttpClients(timeout=httpx.Timeout(2.0))
    yield clients
    await clients.aclose()


@pytest.fixture
def client(http: HttpClients) -> RegistryClient:
    return RegistryClient(http, ssrf=SsrfGuard(["127.0.0.1"]), retry=FAST_RETRY)


@pytest.fixture
def project(harbor: HarborEmulator) -> str:
    """Private Harbor project `proj` with member alice; admin's project `other` next to it."""
    harbor.add_user(*ALICE)
    harbor.add_project("proj", members={ALICE[0]})
    harbor.add_project("other")
    return "proj"


def harbor_source(
    harbor: HarborEmulator, namespace: str = "proj", credentials: tuple[str, str] | None = ALICE
) -> Source:
    user, password = credentials or (None, None)
    endpoint = Endpoint(harbor.url, username=user, password=password)
    return Source(RegistryType.HARBOR, endpoint, namespace)


def quay_source(quay: QuayEmulator, namespace: str, token: str | None = None) -> Source:
    endpoint = Endpoint(quay.url, username="$oauthtoken" if token else None, password=token)
    return Source(RegistryType.QUAY, endpoint, namespace)


async def seed_into(
    registry_client: httpx.AsyncClient, emulator: HarborEmulator | QuayEmulator, repos: list[str]
) -> None:
    await seed_many(registry_client, emulator.registry, repos, auth=emulator.backdoor())


def harbor_pages(harbor: HarborEmulator) -> list[str]:
    return [e.query for e in harbor.matching("GET", HARBOR_REPOS, status=200)]


# --- Harbor --------------------------------------------------------------------------------------


@pytest.mark.parametrize("send_link", [True, False], ids=["link", "full-page-fallback"])
async def test_harbor_lists_every_page_and_strips_the_project(
    send_link: bool,
    client: RegistryClient,
    harbor: HarborEmulator,
    project: str,
    registry_client: httpx.AsyncClient,
) -> None:
    names = [f"app{i:03d}" for i in range(250)]
    await seed_into(registry_client, harbor, [f"proj/{n}" for n in names] + ["other/x", "projx/y"])
    harbor.send_link = send_link

    listed = await list_repositories(client, harbor_source(harbor))

    assert listed == names
    assert harbor_pages(harbor) == [f"page={n}&page_size=100" for n in (1, 2, 3)]


async def test_harbor_without_link_stops_at_the_empty_page_after_full_ones(
    client: RegistryClient, harbor: HarborEmulator, project: str, registry_client: httpx.AsyncClient
) -> None:
    await seed_into(registry_client, harbor, [f"proj/app{i:03d}" for i in range(200)])
    harbor.send_link = False

    listed = await list_repositories(client, harbor_source(harbor))

    assert len(listed) == 200
    assert harbor_pages(harbor) == [f"page={n}&page_size=100" for n in (1, 2, 3)]


async def test_harbor_keeps_nested_names_below_the_project(
    client: RegistryClient, harbor: HarborEmulator, project: str, registry_client: httpx.AsyncClient
) -> None:
    await seed_into(registry_client, harbor, ["proj/team/app", "proj/team/sub/db", "proj/web"])

    listed = await list_repositories(client, harbor_source(harbor))

    assert listed == ["team/app", "team/sub/db", "web"]


async def test_harbor_public_project_lists_anonymously(
    client: RegistryClient, harbor: HarborEmulator, registry_client: httpx.AsyncClient
) -> None:
    harbor.add_project("library", public=True)
    await seed_into(registry_client, harbor, ["library/busybox", "library/alpine"])

    listed = await list_repositories(client, harbor_source(harbor, "library", None))

    assert listed == ["alpine", "busybox"]


async def test_harbor_unknown_project_is_namespace_not_found(
    client: RegistryClient, harbor: HarborEmulator, project: str
) -> None:
    with pytest.raises(NamespaceNotFound, match="Project 'nope' not found on Harbor registry"):
        await list_repositories(client, harbor_source(harbor, "nope"))


async def test_harbor_private_project_of_someone_else_is_forbidden(
    client: RegistryClient, harbor: HarborEmulator, project: str
) -> None:
    harbor.add_user("bob", "bob-pw")

    with pytest.raises(RegistryForbidden):
        await list_repositories(client, harbor_source(harbor, credentials=("bob", "bob-pw")))


async def test_harbor_api_retries_a_503_page(
    client: RegistryClient, harbor: HarborEmulator, project: str, registry_client: httpx.AsyncClient
) -> None:
    await seed_into(registry_client, harbor, ["proj/a", "proj/b"])
    harbor.faults.respond(HARBOR_REPOS, 503)

    assert await list_repositories(client, harbor_source(harbor)) == ["a", "b"]
    assert harbor.count("GET", HARBOR_REPOS, status=503) == 1


# --- Quay ----------------------------------------------------------------------------------------


@pytest.fixture
def quay_org(quay: QuayEmulator) -> str:
    """Private organization `myorg` with member alice."""
    quay.add_user("alice", "alice-pw")
    quay.add_org("myorg", members={"alice"})
    return "myorg"


async def test_quay_follows_next_page_with_the_bearer_token(
    client: RegistryClient, quay: QuayEmulator, quay_org: str, registry_client: httpx.AsyncClient
) -> None:
    names = [f"r{i:03d}" for i in range(250)]
    await seed_into(registry_client, quay, [f"myorg/{n}" for n in names] + ["other/x"])
    token = quay.add_token("alice")

    listed = await list_repositories(client, quay_source(quay, quay_org, token))

    assert listed == names
    queries = [e.query for e in quay.matching("GET", r"/api/v1/repository", status=200)]
    assert len(queries) == 3
    assert "next_page=" not in queries[0]
    assert all("next_page=" in q for q in queries[1:])


async def test_quay_anonymous_asks_for_public_and_gets_only_public_repositories(
    client: RegistryClient, quay: QuayEmulator, quay_org: str, registry_client: httpx.AsyncClient
) -> None:
    await seed_into(registry_client, quay, ["myorg/open", "myorg/closed"])
    quay.set_public("myorg/open")

    listed = await list_repositories(client, quay_source(quay, quay_org))

    assert listed == ["open"]
    assert "public=true" in quay.matching("GET", r"/api/v1/repository")[0].query


async def test_quay_user_namespace_is_listed(
    client: RegistryClient, quay: QuayEmulator, quay_org: str, registry_client: httpx.AsyncClient
) -> None:
    await seed_into(registry_client, quay, ["alice/tool", "alice/cli", "myorg/app"])
    token = quay.add_token("alice")

    listed = await list_repositories(client, quay_source(quay, "alice", token))

    assert listed == ["cli", "tool"]


async def test_quay_token_of_a_non_member_still_sees_a_public_namespace(
    client: RegistryClient, quay: QuayEmulator, registry_client: httpx.AsyncClient
) -> None:
    """Mirroring a public organization (quay.io/prometheus, say) with one's own token: Quay
    lists only repositories the token has permissions on unless `public=true` is asked for."""
    quay.add_org("upstream", public=True)
    await seed_into(registry_client, quay, ["upstream/a", "upstream/b"])
    token = quay.add_token("carol")

    listed = await list_repositories(client, quay_source(quay, "upstream", token))

    assert listed == ["a", "b"]


async def test_quay_empty_organization_is_an_empty_listing(
    client: RegistryClient, quay: QuayEmulator, quay_org: str
) -> None:
    token = quay.add_token("alice")

    assert await list_repositories(client, quay_source(quay, quay_org, token)) == []
    assert quay.count("GET", rf"/api/v1/organization/{quay_org}", status=200) == 1


async def test_quay_unknown_namespace_is_namespace_not_found(
    client: RegistryClient, quay: QuayEmulator, quay_org: str
) -> None:
    with pytest.raises(NamespaceNotFound, match="Namespace 'ghost' not found on Quay"):
        await list_repositories(client, quay_source(quay, "ghost", quay.add_token("alice")))

    assert quay.count("GET", r"/api/v1/users/ghost", status=404) == 1


async def test_quay_bad_token_fails_authentication(
    client: RegistryClient, quay: QuayEmulator, quay_org: str
) -> None:
    with pytest.raises(RegistryAuthFailed, match="Authentication failed"):
        await list_repositories(client, quay_source(quay, quay_org, "not-a-token"))


# --- OCI -----------------------------------------------------------------------------------------


async def test_oci_keeps_only_names_under_the_namespace(
    client: RegistryClient, registry: RegistryServer, registry_client: httpx.AsyncClient
) -> None:
    repos = ["ns/a", "ns/b/c", "nsx/d", "other/ns/e", "ns"]
    await seed(registry_client, registry.url, repos, 1)

    listed = await list_repositories(client, Source(RegistryType.OCI, Endpoint(registry.url), "ns"))

    assert listed == ["a", "b/c"]


async def test_oci_lists_more_than_one_catalog_page_through_token_auth(
    client: RegistryClient, harbor: HarborEmulator, registry_client: httpx.AsyncClient
) -> None:
    names = [f"r{i:04d}" for i in range(1050)]
    await seed_into(registry_client, harbor, [*(f"big/{n}" for n in names), "aaa/x", "zzz/y"])
    endpoint = Endpoint(harbor.url, username=HARBOR_ADMIN, password=HARBOR_ADMIN_PASSWORD)

    listed = await list_repositories(client, Source(RegistryType.OCI, endpoint, "big"))

    assert listed == names


async def test_oci_namespace_without_repositories_is_namespace_not_found(
    client: RegistryClient, registry: RegistryServer, registry_client: httpx.AsyncClient
) -> None:
    await seed(registry_client, registry.url, ["other/a"], 1)

    with pytest.raises(NamespaceNotFound, match="No repositories under 'ns/'"):
        await list_repositories(client, Source(RegistryType.OCI, Endpoint(registry.url), "ns"))


# --- filters on real listings ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("patterns", "expected"),
    [
        ([], ["api", "team/app", "team/db", "web", "web-legacy"]),
        (["web*"], ["web", "web-legacy"]),
        (["*app"], ["team/app"]),
        (["team*"], ["team/app", "team/db"]),
        (["web*", "!*legacy"], ["web"]),
        (["!team/*"], ["api", "web", "web-legacy"]),
        (["API", "Web*"], []),
    ],
    ids=["none", "plain", "star-crosses-slash", "prefix", "exclusion", "only-exclusion", "case"],
)
async def test_filters_select_from_the_real_harbor_listing(
    patterns: list[str],
    expected: list[str],
    client: RegistryClient,
    harbor: HarborEmulator,
    project: str,
    registry_client: httpx.AsyncClient,
) -> None:
    repos = ["api", "team/app", "team/db", "web", "web-legacy"]
    await seed_into(registry_client, harbor, [f"proj/{r}" for r in repos])

    listed = await list_repositories(client, harbor_source(harbor))

    assert RepositoryFilter(patterns).select(listed) == expected


async def test_filter_explains_why_a_repository_is_skipped() -> None:
    decide = RepositoryFilter(["web*", "!*legacy"]).decide

    assert decide("web-legacy").reason == "Excluded by repository filter '!*legacy'"
    assert decide("api").reason == "Matches none of the repository filters"
    assert decide("web").included


# --- verify_source -------------------------------------------------------------------------------


async def test_verify_success_counts_the_visible_repositories(
    client: RegistryClient, harbor: HarborEmulator, project: str, registry_client: httpx.AsyncClient
) -> None:
    await seed_into(registry_client, harbor, ["proj/a", "proj/b", "proj/c", "other/d"])

    outcome = await verify_source(client, harbor_source(harbor))

    assert outcome.success
    assert outcome.message == "Connection successful: 3 repositories visible in 'proj'"


async def test_verify_dns_failure(http: HttpClients) -> None:
    client = RegistryClient(http, ssrf=SsrfGuard(["registry.example.invalid"]), retry=FAST_RETRY)
    source = Source(RegistryType.HARBOR, Endpoint("https://registry.example.invalid"), "proj")

    outcome = await verify_source(client, source)

    assert not outcome.success
    assert outcome.message.startswith("DNS lookup failed")
    assert "registry.example.invalid" in outcome.message


async def test_verify_ssrf_refusal_is_generic(http: HttpClients, harbor: HarborEmulator) -> None:
    client = RegistryClient(http, ssrf=SsrfGuard([]), retry=FAST_RETRY)

    outcome = await verify_source(client, harbor_source(harbor))

    assert outcome == outcome.__class__(False, "The provided registry URL is not allowed")
    assert harbor.requests == []


async def test_verify_tls_failure(client: RegistryClient, tls_registry: RegistryServer) -> None:
    outcome = await verify_source(
        client, Source(RegistryType.OCI, Endpoint(tls_registry.url), "ns")
    )

    assert not outcome.success
    assert outcome.message.startswith("TLS failure")


async def test_verify_connection_refused(client: RegistryClient) -> None:
    source = Source(RegistryType.HARBOR, Endpoint(f"http://127.0.0.1:{free_port()}"), "proj")

    outcome = await verify_source(client, source)

    assert not outcome.success
    assert outcome.message.startswith("Cannot connect")


async def test_verify_timeout(harbor: HarborEmulator, project: str) -> None:
    harbor.faults.hang()
    http = HttpClients(timeout=httpx.Timeout(0.3))
    client = RegistryClient(http, ssrf=SsrfGuard(["127.0.0.1"]), retry=RetryPolicy(attempts=1))

    try:
        outcome = await verify_source(client, harbor_source(harbor))
    finally:
        await http.aclose()

    assert not outcome.success
    assert outcome.message.startswith("Timed out")


async def test_verify_bad_credentials(
    client: RegistryClient, harbor: HarborEmulator, project: str
) -> None:
    outcome = await verify_source(client, harbor_source(harbor, credentials=("alice", "wrong")))

    assert not outcome.success
    assert outcome.message.startswith("Authentication failed")
    assert "credentials" in outcome.message


async def test_verify_private_project_anonymously_asks_for_credentials(
    client: RegistryClient, harbor: HarborEmulator, project: str
) -> None:
    """Harbor's REST API answers 401 without `WWW-Authenticate` (it is not the /v2 token
    flow): the message must point at the missing credentials, not at the registry."""
    outcome = await verify_source(client, harbor_source(harbor, credentials=None))

    assert not outcome.success
    assert outcome.message.startswith("Authentication failed")
    assert "credentials" in outcome.message


async def test_verify_forbidden(
    client: RegistryClient, harbor: HarborEmulator, project: str
) -> None:
    harbor.add_user("bob", "bob-pw")

    outcome = await verify_source(client, harbor_source(harbor, credentials=("bob", "bob-pw")))

    assert not outcome.success
    assert outcome.message.startswith("Access denied")


async def test_verify_project_not_found(
    client: RegistryClient, harbor: HarborEmulator, project: str
) -> None:
    outcome = await verify_source(client, harbor_source(harbor, "nope"))

    assert not outcome.success
    assert outcome.message.startswith("Project 'nope' not found on Harbor registry")


async def test_verify_messages_are_all_different(
    client: RegistryClient, http: HttpClients, harbor: HarborEmulator, project: str
) -> None:
    harbor.add_user("bob", "bob-pw")
    guarded = RegistryClient(http, ssrf=SsrfGuard([]), retry=FAST_RETRY)
    outcomes = [
        await verify_source(client, harbor_source(harbor)),
        await verify_source(guarded, harbor_source(harbor)),
        await verify_source(client, harbor_source(harbor, credentials=("alice", "wrong"))),
        await verify_source(client, harbor_source(harbor, credentials=("bob", "bob-pw"))),
        await verify_source(client, harbor_source(harbor, "nope")),
        await verify_source(
            client,
            Source(RegistryType.HARBOR, Endpoint(f"http://127.0.0.1:{free_port()}"), "proj"),
        ),
    ]

    assert len({o.message.split(":")[0] for o in outcomes}) == len(outcomes)
