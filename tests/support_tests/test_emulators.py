"""The Harbor and Quay emulators behave like the products where the app can tell: their
listing APIs page over what really is in the backing registry, their realms drive the real
registry's token auth (skopeo copies through them), and their faults do what they say."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from tests.support.certs import ServerCert, SigningKey
from tests.support.emulator_common import seed_many
from tests.support.harbor import HARBOR_ADMIN, HARBOR_ADMIN_PASSWORD, HarborEmulator
from tests.support.images import (
    catalog,
    delete_manifest,
    manifest_digest,
    push_image,
    push_index,
    seed,
)
from tests.support.quay import QuayEmulator
from tests.support.registry_auth import RegistryAuth, parse_challenge
from tests.support.registry_server import RegistryServer
from tests.support.skopeo import skopeo, write_authfile

ADMIN = (HARBOR_ADMIN, HARBOR_ADMIN_PASSWORD)
ALICE = ("alice", "alice-pw-1")
BOB = ("bob", "bob-pw-1")
REPOS = "/api/v2.0/projects/{}/repositories"


async def _seed(
    client: httpx.AsyncClient, emulator: HarborEmulator | QuayEmulator, repos: list[str]
) -> dict[str, dict[str, str]]:
    return await seed(client, emulator.registry.url, repos, 1, auth=emulator.backdoor())


@pytest.fixture
def project(harbor: HarborEmulator) -> str:
    """Private project `proj`: alice is a member, bob is a user without access."""
    harbor.add_user(*ALICE)
    harbor.add_user(*BOB)
    harbor.add_project("proj", members={ALICE[0]})
    return "proj"


# --- Harbor API --------------------------------------------------------------------------------


async def test_harbor_pages_the_real_repositories_of_a_project_with_total_and_links(
    harbor: HarborEmulator, project: str, registry_client: httpx.AsyncClient
) -> None:
    names = [f"proj/app{i:02d}" for i in range(23)] + ["proj/team/nested"]
    await seed_many(registry_client, harbor.registry, [*names, "other/app"], auth=harbor.backdoor())
    url = harbor.url + REPOS.format(project)

    pages = [
        await registry_client.get(url, params={"page": n, "page_size": 10}, auth=ALICE)
        for n in (1, 2, 3)
    ]

    assert [len(p.json()) for p in pages] == [10, 10, 4]
    assert {p.headers["x-total-count"] for p in pages} == {"24"}
    assert [sorted(str(rel) for rel in p.links) for p in pages] == [
        ["next"],
        ["next", "prev"],
        ["prev"],
    ]
    assert pages[1].headers["link"] == (
        f'<{REPOS.format(project)}?page=1&page_size=10>; rel="prev" , '
        f'<{REPOS.format(project)}?page=3&page_size=10>; rel="next"'
    )
    listed = [item["name"] for p in pages for item in p.json()]
    assert sorted(listed) == sorted(names)
    assert pages[0].headers["content-type"] == "application/json; charset=utf-8"


async def test_harbor_defaults_to_ten_per_page_and_can_hide_link(
    harbor: HarborEmulator, project: str, registry_client: httpx.AsyncClient
) -> None:
    await seed_many(
        registry_client, harbor.registry, [f"proj/r{i}" for i in range(12)], auth=harbor.backdoor()
    )
    url = harbor.url + REPOS.format(project)

    with_link = await registry_client.get(url, auth=ALICE)
    harbor.send_link = False
    without_link = await registry_client.get(url, auth=ALICE)

    assert len(with_link.json()) == len(without_link.json()) == 10
    assert "next" in with_link.links
    assert "link" not in without_link.headers
    assert without_link.headers["x-total-count"] == "12"


async def test_harbor_rejects_a_page_size_above_100(
    harbor: HarborEmulator, project: str, registry_client: httpx.AsyncClient
) -> None:
    response = await registry_client.get(
        harbor.url + REPOS.format(project), params={"page_size": 101}, auth=ALICE
    )

    assert response.status_code == 422
    assert response.json()["errors"][0]["code"] == "UNPROCESSABLE_ENTITY"


async def test_harbor_q_filters_by_name(
    harbor: HarborEmulator, project: str, registry_client: httpx.AsyncClient
) -> None:
    await _seed(registry_client, harbor, ["proj/api", "proj/web", "proj/webhooks"])
    url = harbor.url + REPOS.format(project)

    fuzzy = await registry_client.get(url, params={"q": "name=~web"}, auth=ALICE)
    exact = await registry_client.get(url, params={"q": "name=proj/web"}, auth=ALICE)

    assert sorted(i["name"] for i in fuzzy.json()) == ["proj/web", "proj/webhooks"]
    assert [i["name"] for i in exact.json()] == ["proj/web"]


@pytest.mark.parametrize(
    ("credentials", "status", "code"),
    [
        (("alice", "wrong"), 401, "UNAUTHORIZED"),
        (None, 401, "UNAUTHORIZED"),
        (BOB, 403, "FORBIDDEN"),
    ],
    ids=["bad-password", "anonymous", "not-a-member"],
)
async def test_harbor_refuses_a_private_project(
    credentials: tuple[str, str] | None,
    status: int,
    code: str,
    harbor: HarborEmulator,
    project: str,
    registry_client: httpx.AsyncClient,
) -> None:
    response = await registry_client.get(harbor.url + REPOS.format(project), auth=credentials)

    assert response.status_code == status
    assert response.json() == {"errors": [{"code": code, "message": code.lower()}]}
    assert "www-authenticate" not in response.headers


async def test_harbor_public_project_is_listed_anonymously(
    harbor: HarborEmulator, registry_client: httpx.AsyncClient
) -> None:
    harbor.add_project("library", public=True)
    await _seed(registry_client, harbor, ["library/busybox"])

    response = await registry_client.get(harbor.url + REPOS.format("library"))

    assert response.status_code == 200
    assert [i["name"] for i in response.json()] == ["library/busybox"]


async def test_harbor_unknown_project_is_404_or_hidden_like_harbor_2_0_1(
    harbor: HarborEmulator, project: str, registry_client: httpx.AsyncClient
) -> None:
    url = harbor.url + REPOS.format("nope")

    documented = await registry_client.get(url, auth=ALICE)
    harbor.unknown_project = "hidden"
    hidden = await registry_client.get(url, auth=ALICE)

    assert documented.status_code == 404
    assert documented.json() == {
        "errors": [{"code": "NOT_FOUND", "message": "project nope not found"}]
    }
    assert hidden.status_code == 403


# --- Quay API ----------------------------------------------------------------------------------


@pytest.fixture
def quay_org(quay: QuayEmulator) -> str:
    """Organization `myorg` (private) with member alice and robot `myorg+bot`."""
    quay.add_user("alice", "alice-pw")
    quay.add_user("myorg+bot", "robot-token")
    quay.add_org("myorg", members={"alice", "myorg+bot"})
    return "myorg"


async def test_quay_pages_100_per_page_with_next_page_tokens(
    quay: QuayEmulator, quay_org: str, registry_client: httpx.AsyncClient
) -> None:
    names = [f"myorg/r{i:03d}" for i in range(250)]
    await seed_many(registry_client, quay.registry, [*names, "other/x"], auth=quay.backdoor())
    token = quay.add_token("alice")
    headers = {"Authorization": f"Bearer {token}"}
    params: dict[str, str] = {"namespace": quay_org}

    pages = []
    while True:
        response = await registry_client.get(
            f"{quay.url}/api/v1/repository", params=params, headers=headers
        )
        assert response.status_code == 200
        pages.append(response.json())
        if "next_page" not in pages[-1]:
            break
        params["next_page"] = pages[-1]["next_page"]

    assert [len(p["repositories"]) for p in pages] == [100, 100, 50]
    listed = [f"{r['namespace']}/{r['name']}" for p in pages for r in p["repositories"]]
    assert listed == names
    assert {(r["kind"], r["is_public"]) for p in pages for r in p["repositories"]} == {
        ("image", False)
    }


async def test_quay_anonymous_sees_only_public_repositories_and_only_with_public_true(
    quay: QuayEmulator, quay_org: str, registry_client: httpx.AsyncClient
) -> None:
    await _seed(registry_client, quay, ["myorg/open", "myorg/closed"])
    quay.set_public("myorg/open")
    url = f"{quay.url}/api/v1/repository"

    without_public = await registry_client.get(url, params={"namespace": quay_org})
    with_public = await registry_client.get(url, params={"namespace": quay_org, "public": "true"})

    assert without_public.json() == {"repositories": []}
    assert [r["name"] for r in with_public.json()["repositories"]] == ["open"]


async def test_quay_bearer_token_shows_private_repositories_and_a_bad_one_is_401(
    quay: QuayEmulator, quay_org: str, registry_client: httpx.AsyncClient
) -> None:
    await _seed(registry_client, quay, ["myorg/closed"])
    url = f"{quay.url}/api/v1/repository"
    token = quay.add_token("alice")

    good = await registry_client.get(
        url, params={"namespace": quay_org}, headers={"Authorization": f"Bearer {token}"}
    )
    bad = await registry_client.get(
        url, params={"namespace": quay_org}, headers={"Authorization": "Bearer nope"}
    )

    assert [r["name"] for r in good.json()["repositories"]] == ["closed"]
    assert bad.status_code == 401
    assert bad.json()["error_type"] == "invalid_token"


async def test_quay_requires_a_namespace_or_public(
    quay: QuayEmulator, registry_client: httpx.AsyncClient
) -> None:
    response = await registry_client.get(f"{quay.url}/api/v1/repository")

    assert response.status_code == 400
    assert "namespace, starred or public" in response.json()["error_message"]


async def test_quay_unknown_next_page_token_restarts_at_the_first_page(
    quay: QuayEmulator, quay_org: str, registry_client: httpx.AsyncClient
) -> None:
    quay.page_size = 2
    await _seed(registry_client, quay, ["myorg/a", "myorg/b", "myorg/c"])
    token = quay.add_token("alice")

    response = await registry_client.get(
        f"{quay.url}/api/v1/repository",
        params={"namespace": quay_org, "next_page": "garbage"},
        headers={"Authorization": f"Bearer {token}"},
    )

    assert [r["name"] for r in response.json()["repositories"]] == ["a", "b"]
    assert "next_page" in response.json()


async def test_quay_tells_organizations_from_users(
    quay: QuayEmulator, quay_org: str, registry_client: httpx.AsyncClient
) -> None:
    async def status(path: str) -> int:
        return (await registry_client.get(f"{quay.url}/api/v1/{path}")).status_code

    assert await status(f"organization/{quay_org}") == 200
    assert await status(f"users/{quay_org}") == 404
    assert await status("users/alice") == 200
    assert await status("organization/alice") == 404
    assert await status("organization/ghost") == 404
    assert await status("users/ghost") == 404


# --- /v2 proxy and token realm -----------------------------------------------------------------


async def test_skopeo_copies_from_the_emulated_harbor_through_its_token_realm(
    harbor: HarborEmulator,
    project: str,
    registry: RegistryServer,
    registry_client: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    digest = await push_index(registry_client, harbor.url, "proj/multi", "v1", auth=ALICE)
    authfile = write_authfile(tmp_path / "src.json", {harbor.host: ALICE})

    result = await skopeo(
        "copy", "--all", "--preserve-digests",
        "--src-tls-verify=false", "--dest-tls-verify=false", "--src-authfile", str(authfile),
        f"docker://{harbor.host}/proj/multi:v1", f"docker://{registry.host}/copy/multi:v1",
    )  # fmt: skip

    result.check()
    assert await manifest_digest(registry_client, registry.url, "copy/multi", "v1") == digest
    assert {t.user for t in harbor.tokens.issued} == {ALICE[0]}
    assert harbor.count("GET", r"/v2/proj/multi/blobs/.*", status=200) > 0


async def test_skopeo_copies_from_the_emulated_quay_with_a_robot(
    quay: QuayEmulator,
    quay_org: str,
    registry: RegistryServer,
    registry_client: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    digest = (await _seed(registry_client, quay, ["myorg/app"]))["myorg/app"]["v1"]
    authfile = write_authfile(tmp_path / "src.json", {quay.host: ("myorg+bot", "robot-token")})

    result = await skopeo(
        "copy", "--all", "--preserve-digests",
        "--src-tls-verify=false", "--dest-tls-verify=false", "--src-authfile", str(authfile),
        f"docker://{quay.host}/myorg/app:v1", f"docker://{registry.host}/copy/app:v1",
    )  # fmt: skip

    result.check()
    assert await manifest_digest(registry_client, registry.url, "copy/app", "v1") == digest
    assert quay.tokens.issued[0].granted[0].actions == ("pull",)


async def test_skopeo_is_refused_by_the_real_registry_without_access(
    harbor: HarborEmulator, project: str, registry: RegistryServer, tmp_path: Path
) -> None:
    authfile = write_authfile(tmp_path / "src.json", {harbor.host: BOB})

    result = await skopeo(
        "inspect", "--tls-verify=false", "--authfile", str(authfile),
        f"docker://{harbor.host}/proj/app:v1",
    )  # fmt: skip

    assert result.returncode == 1
    assert "unauthorized" in result.stderr or "denied" in result.stderr
    assert harbor.tokens.issued[-1].granted[0].actions == ()


async def test_proxy_passes_the_registry_challenge_and_rewrites_upload_locations(
    harbor: HarborEmulator, project: str, registry_client: httpx.AsyncClient
) -> None:
    challenge = await registry_client.get(f"{harbor.url}/v2/proj/app/tags/list")
    auth = RegistryAuth(*ALICE)
    upload = await registry_client.post(f"{harbor.url}/v2/proj/app/blobs/uploads/", auth=auth)

    assert challenge.status_code == 401
    scheme, params = parse_challenge(challenge.headers["www-authenticate"])
    assert (scheme, params["realm"], params["service"]) == (
        "bearer",
        f"{harbor.url}/service/token",
        "harbor-registry",
    )
    assert params["scope"] == "repository:proj/app:pull"
    assert upload.status_code == 202
    assert upload.headers["location"].startswith(f"{harbor.url}/v2/proj/app/blobs/uploads/")


async def test_chunked_push_and_delete_stream_through_the_proxy(
    harbor: HarborEmulator, project: str, registry_client: httpx.AsyncClient
) -> None:
    digest = await push_image(
        registry_client, harbor.url, "proj/app", "v1", layer_size=4096, chunk_size=1000, auth=ALICE
    )
    stored = await manifest_digest(
        registry_client, harbor.registry.url, "proj/app", "v1", auth=harbor.backdoor()
    )
    await delete_manifest(registry_client, harbor.url, "proj/app", digest, auth=ALICE)

    assert stored == digest
    assert harbor.count("PATCH", r"/v2/proj/app/blobs/uploads/.*", status=202) >= 5
    assert harbor.count("DELETE", r"/v2/proj/app/manifests/.*", status=202) == 1
    assert await manifest_digest(registry_client, harbor.url, "proj/app", "v1", auth=ALICE) is None


async def test_seed_many_writes_repositories_the_registry_really_serves(
    harbor: HarborEmulator, registry_client: httpx.AsyncClient
) -> None:
    harbor.add_project("big")
    names = [f"big/r{i:04d}" for i in range(1050)]
    started = time.monotonic()

    digest = await seed_many(registry_client, harbor.registry, names, auth=harbor.backdoor())

    assert time.monotonic() - started < 5
    assert await catalog(registry_client, harbor.registry.url, auth=harbor.backdoor()) == names
    assert (
        await manifest_digest(registry_client, harbor.url, "big/r1049", "latest", auth=ADMIN)
        == digest
    )
    manifest = await registry_client.get(
        f"{harbor.url}/v2/big/r0500/manifests/latest",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        auth=RegistryAuth(*ADMIN),
    )
    layer = json.loads(manifest.content)["layers"][0]["digest"]
    blob = await registry_client.get(
        f"{harbor.url}/v2/big/r0500/blobs/{layer}", auth=RegistryAuth(*ADMIN)
    )
    assert blob.status_code == 200


# --- faults and the request log ----------------------------------------------------------------


async def test_forced_answers_apply_to_the_next_n_matching_requests_then_stop(
    harbor: HarborEmulator, project: str, registry_client: httpx.AsyncClient
) -> None:
    harbor.faults.respond(REPOS.format(r"proj"), 503, times=2)
    url = harbor.url + REPOS.format(project)

    statuses = [(await registry_client.get(url, auth=ALICE)).status_code for _ in range(3)]

    assert statuses == [503, 503, 200]
    assert [(e.method, e.path, e.status) for e in harbor.requests] == [
        ("GET", REPOS.format(project), 503),
        ("GET", REPOS.format(project), 503),
        ("GET", REPOS.format(project), 200),
    ]


async def test_forced_answer_carries_its_headers_and_matches_only_its_method(
    harbor: HarborEmulator, registry_client: httpx.AsyncClient
) -> None:
    harbor.faults.respond(r"/v2/.*", 429, method="HEAD", headers={"Retry-After": "1"})

    get = await registry_client.get(f"{harbor.url}/v2/")
    head = await registry_client.head(f"{harbor.url}/v2/")

    assert get.status_code == 401
    assert (head.status_code, head.headers["retry-after"]) == (429, "1")


async def test_hang_accepts_and_never_answers(
    harbor: HarborEmulator, registry_client: httpx.AsyncClient
) -> None:
    harbor.faults.hang(r"/api/.*")
    started = time.monotonic()

    with pytest.raises(httpx.ReadTimeout):
        await registry_client.get(harbor.url + REPOS.format("proj"), timeout=0.3)

    assert time.monotonic() - started < 2
    assert harbor.requests[-1].status is None
    assert (await registry_client.get(f"{harbor.url}/v2/")).status_code == 401


async def test_strip_headers_removes_docker_content_digest(
    harbor: HarborEmulator, project: str, registry_client: httpx.AsyncClient
) -> None:
    await _seed(registry_client, harbor, ["proj/app"])
    url = f"{harbor.url}/v2/proj/app/manifests/v1"
    auth = RegistryAuth(*ALICE)
    before = await registry_client.head(url, auth=auth)

    harbor.faults.strip_headers(r"/v2/proj/app/manifests/.*", "Docker-Content-Digest")
    after = await registry_client.head(url, auth=auth)

    assert "docker-content-digest" in before.headers
    assert after.status_code == 200
    assert "docker-content-digest" not in after.headers


async def test_request_log_keeps_the_query_string(
    harbor: HarborEmulator, project: str, registry_client: httpx.AsyncClient
) -> None:
    await registry_client.get(
        harbor.url + REPOS.format(project), params={"page": 2, "page_size": 5}, auth=ALICE
    )

    assert harbor.matching("GET", r"/api/.*")[0].query == "page=2&page_size=5"
    assert harbor.count("GET", r"/api/.*", status=200) == 1


async def test_delay_answers_normally_but_late(
    harbor: HarborEmulator, registry_client: httpx.AsyncClient
) -> None:
    harbor.faults.delay(r"/v2/", 0.3)
    started = time.monotonic()

    response = await registry_client.get(f"{harbor.url}/v2/")

    assert response.status_code == 401
    assert time.monotonic() - started >= 0.3


async def test_tls_emulator_serves_api_and_realm_over_https(
    token_signing_key: SigningKey, server_cert: ServerCert, registry_client: httpx.AsyncClient
) -> None:
    with HarborEmulator(token_signing_key, tls=server_cert) as tls_harbor:
        tls_harbor.add_project("library", public=True)
        api = await registry_client.get(tls_harbor.url + REPOS.format("library"))
        challenge = await registry_client.get(f"{tls_harbor.url}/v2/library/x/tags/list")

    assert tls_harbor.url.startswith("https://")
    assert api.json() == []
    assert parse_challenge(challenge.headers["www-authenticate"])[1]["realm"] == (
        f"{tls_harbor.url}/service/token"
    )


# --- Quay repository creation (createRepo, getRepo) and the push rule ---------------------------

QUAY_OWNER = "owner"


@pytest.fixture
def owner_token(quay: QuayEmulator, quay_org: str) -> str:
    """An OAuth token (every scope) of `owner`, an administrator of `myorg`."""
    org = quay.orgs[quay_org]
    org.admins.add(QUAY_OWNER)
    org.members.add(QUAY_OWNER)
    return quay.add_token(QUAY_OWNER)


async def _create(
    client: httpx.AsyncClient, quay: QuayEmulator, token: str | None, body: object
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return await client.post(f"{quay.url}/api/v1/repository", json=body, headers=headers)


def _new_repo(name: str = "app", visibility: str = "private", **extra: str) -> dict[str, str]:
    return {
        "namespace": "myorg",
        "repository": name,
        "visibility": visibility,
        "description": "made by a test",
        **extra,
    }


@pytest.mark.parametrize("visibility", ["public", "private"])
async def test_quay_creates_a_repository_that_keeps_its_visibility(
    visibility: str,
    quay: QuayEmulator,
    owner_token: str,
    registry_client: httpx.AsyncClient,
) -> None:
    headers = {"Authorization": f"Bearer {owner_token}"}

    created = await _create(registry_client, quay, owner_token, _new_repo("team/app", visibility))
    shown = await registry_client.get(f"{quay.url}/api/v1/repository/myorg/team/app")
    listed = await registry_client.get(
        f"{quay.url}/api/v1/repository", params={"namespace": "myorg"}, headers=headers
    )

    assert created.status_code == 201
    assert created.json() == {"namespace": "myorg", "name": "team/app", "kind": "image"}
    public = visibility == "public"
    if public:
        assert shown.status_code == 200
        assert shown.json()["is_public"] is True
        assert shown.json()["description"] == "made by a test"
    else:
        assert shown.status_code == 401, "a private repository is hidden from anonymous callers"
    as_owner = await registry_client.get(
        f"{quay.url}/api/v1/repository/myorg/team/app", headers=headers
    )
    assert (as_owner.json()["is_public"], as_owner.json()["can_admin"]) == (public, True)
    assert [(r["name"], r["is_public"]) for r in listed.json()["repositories"]] == [
        ("team/app", public)
    ]
    assert quay.repositories["myorg/team/app"].created_by == QUAY_OWNER


async def test_quay_answers_repository_already_exists_for_created_and_seeded_ones(
    quay: QuayEmulator, owner_token: str, registry_client: httpx.AsyncClient
) -> None:
    await _seed(registry_client, quay, ["myorg/seeded"])
    first = await _create(registry_client, quay, owner_token, _new_repo("app"))

    again = await _create(registry_client, quay, owner_token, _new_repo("app", "public"))
    seeded = await _create(registry_client, quay, owner_token, _new_repo("seeded"))

    assert first.status_code == 201
    assert again.status_code == seeded.status_code == 400
    assert again.json() == {
        "detail": "Repository already exists",
        "error_message": "Repository already exists",
        "error_type": "invalid_request",
        "title": "invalid_request",
        "type": f"{quay.url}/api/v1/error/invalid_request",
        "status": 400,
    }
    assert seeded.json()["error_message"] == "Repository already exists"
    assert quay.is_public("myorg/app") is False, "a refused create changes nothing"


@pytest.mark.parametrize(
    ("who", "namespace", "status", "error_type"),
    [
        ("member", "myorg", 403, "insufficient_scope"),
        ("no-create-scope", "myorg", 403, "insufficient_scope"),
        ("owner", "ghost", 403, "insufficient_scope"),
        ("bad-token", "myorg", 401, "invalid_token"),
        ("anonymous", "myorg", 401, "invalid_token"),
    ],
)
async def test_quay_create_needs_create_rights_in_the_namespace(
    who: str,
    namespace: str,
    status: int,
    error_type: str,
    quay: QuayEmulator,
    owner_token: str,
    registry_client: httpx.AsyncClient,
) -> None:
    tokens = {
        "member": quay.add_token("alice"),
        "no-create-scope": quay.add_token(QUAY_OWNER, scopes={"repo:read", "repo:write"}),
        "owner": owner_token,
        "bad-token": "not-a-token",
        "anonymous": None,
    }

    response = await _create(
        registry_client, quay, tokens[who], _new_repo("app", namespace=namespace)
    )

    assert response.status_code == status
    assert response.json()["error_type"] == error_type
    assert quay.repositories == {}


async def test_quay_creators_and_users_at_home_may_create(
    quay: QuayEmulator, quay_org: str, registry_client: httpx.AsyncClient
) -> None:
    quay.orgs[quay_org].creators.add("carol")
    quay.orgs[quay_org].members.add("carol")
    carol = quay.add_token("carol")
    body = _new_repo("tool")
    del body["namespace"]  # the caller's own namespace

    in_org = await _create(registry_client, quay, carol, _new_repo("app"))
    at_home = await _create(registry_client, quay, carol, body)

    assert in_org.status_code == at_home.status_code == 201
    assert at_home.json()["namespace"] == "carol"
    assert sorted(quay.repositories) == ["carol/tool", "myorg/app"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"namespace": "myorg", "repository": "app", "visibility": "private"},
         "'description' is a required property"),
        (_new_repo("app", "secret"), "\"secret\" is not one of ['public', 'private']"),
        (_new_repo("Bad Name"), "Invalid repository name"),
        (_new_repo("app", repo_kind="helm"),
         "\"helm\" is not one of ['image', 'application', None]"),
    ],
    ids=["missing-description", "bad-visibility", "bad-name", "bad-kind"],
)  # fmt: skip
async def test_quay_create_validates_the_body(
    body: dict[str, str],
    message: str,
    quay: QuayEmulator,
    owner_token: str,
    registry_client: httpx.AsyncClient,
) -> None:
    response = await _create(registry_client, quay, owner_token, body)

    assert response.status_code == 400
    assert response.json()["error_message"] == message
    assert quay.repositories == {}


async def test_quay_get_repository_hides_private_ones_and_404s_missing_ones(
    quay: QuayEmulator, owner_token: str, registry_client: httpx.AsyncClient
) -> None:
    await _create(registry_client, quay, owner_token, _new_repo("closed"))
    quay.add_user("mallory")
    mallory = {"Authorization": f"Bearer {quay.add_token('mallory')}"}
    alice = {"Authorization": f"Bearer {quay.add_token('alice')}"}

    async def status(path: str, headers: dict[str, str]) -> int:
        url = f"{quay.url}/api/v1/repository/{path}"
        return (await registry_client.get(url, headers=headers)).status_code

    assert await status("myorg/closed", alice) == 200
    assert await status("myorg/closed", mallory) == 403
    assert await status("myorg/closed", {}) == 401
    assert await status("myorg/missing", alice) == 404


async def _copy_into_quay(
    quay: QuayEmulator, source: RegistryServer, tmp_path: Path
) -> tuple[int, str]:
    authfile = write_authfile(tmp_path / "dst.json", {quay.host: ("myorg+bot", "robot-token")})
    result = await skopeo(
        "copy", "--all", "--preserve-digests",
        "--src-tls-verify=false", "--dest-tls-verify=false", "--dest-authfile", str(authfile),
        f"docker://{source.host}/src/app:v1", f"docker://{quay.host}/myorg/app:v1",
    )  # fmt: skip
    return result.returncode, result.stderr


async def test_a_robot_may_push_only_into_a_repository_created_first(
    quay: QuayEmulator,
    owner_token: str,
    registry: RegistryServer,
    registry_client: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    digest = await push_image(registry_client, registry.url, "src/app", "v1")

    refused, stderr = await _copy_into_quay(quay, registry, tmp_path)
    push_grants = [g.actions for t in quay.tokens.issued for g in t.granted if "push" in g.actions]
    created_by_push = "myorg/app" in quay.repositories
    created = await _create(registry_client, quay, owner_token, _new_repo("app"))
    accepted, _ = await _copy_into_quay(quay, registry, tmp_path)

    assert refused != 0
    assert "unauthorized" in stderr or "denied" in stderr, stderr
    assert push_grants == [], "the realm must downscope the robot's push to pull"
    assert not created_by_push, "a robot's push creates nothing"
    assert created.status_code == 201
    assert accepted == 0
    stored = await manifest_digest(
        registry_client, quay.registry.url, "myorg/app", "v1", auth=quay.backdoor()
    )
    assert stored == digest


async def test_a_creator_push_creates_the_repository_like_quay_push_to_create(
    quay: QuayEmulator, quay_org: str, registry_client: httpx.AsyncClient
) -> None:
    quay.orgs[quay_org].creators.add("alice")

    digest = await push_image(
        registry_client, quay.url, "myorg/fresh", "v1", auth=RegistryAuth("alice", "alice-pw")
    )

    assert quay.repositories["myorg/fresh"].created_by == "alice"
    assert quay.is_public("myorg/fresh") is False
    assert (
        await manifest_digest(
            registry_client, quay.url, "myorg/fresh", "v1", auth=RegistryAuth("alice", "alice-pw")
        )
        == digest
    )
