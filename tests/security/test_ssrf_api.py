"""SSRF bypass attempts through the API: create, update and verify (SPEC §1.1, §5.2).

The unit rules live in tests/registry/test_ssrf.py; here each spelling of "this machine" goes
through the HTTP API of the strict app (empty allow list, the production default), which must
answer with the generic message only, never the reason. For verify, the URL points at a live
registry on 127.0.0.1, so "refused" also means "nothing reached it" (its access log), and the
same config verified under the old, open rules shows that it would have.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import auth, config_body
from tests.routers.test_mirror_config import assert_api_error
from tests.security.conftest import GENERIC, FakeDns
from tests.support.registry_server import RegistryServer

# (template with the live registry's port, reachable on this machine when allowed)
BYPASSES: dict[str, tuple[str, bool]] = {
    "ipv6 loopback": ("http://[::1]:{port}", False),  # the registry listens on IPv4 only
    "ipv4-mapped ipv6": ("http://[::ffff:127.0.0.1]:{port}", True),
    "ipv4-mapped ipv6, hex": ("http://[::ffff:7f00:1]:{port}", True),
    "decimal ipv4": ("http://2130706433:{port}", True),
    "hex ipv4": ("http://0x7f000001:{port}", True),
    "octal ipv4": ("http://0177.0.0.1:{port}", True),
    "short ipv4": ("http://127.1:{port}", True),
    "unspecified address": ("http://0.0.0.0:{port}", True),
    "localhost": ("http://localhost:{port}", True),
    "dns name resolving to 127.0.0.1": ("http://rebind.test:{port}", True),
    "dns name resolving to ::ffff:127.0.0.1": ("http://mapped.test:{port}", True),
}
# Refused at create/update only: not reachable from here, or not allowed even by the open app.
UNREACHABLE = {
    "localhost with trailing dot": "http://LocalHost.:{port}",  # no such name in /etc/hosts
    "nat64 of loopback": "http://[64:ff9b::7f00:1]:{port}",
    "6to4 of loopback": "http://[2002:7f00:1::]:{port}",
    "cloud metadata": "http://169.254.169.254",
    "cloud metadata, decimal": "http://2852039166",
}
ALL_URLS = {**{k: v for k, (v, _) in BYPASSES.items()}, **UNREACHABLE}


@pytest.fixture
def lookups(fake_dns: FakeDns) -> FakeDns:
    fake_dns.answer("rebind.test", "127.0.0.1")
    fake_dns.answer("mapped.test", "::ffff:127.0.0.1")
    return fake_dns


def oci_body(url: str) -> dict[str, Any]:
    return config_body(
        external_registry_type="oci", external_registry_url=url, external_namespace="src"
    )


@pytest.mark.usefixtures("org", "lookups")
@pytest.mark.parametrize("template", ALL_URLS.values(), ids=ALL_URLS.keys())
async def test_create_refuses_internal_hosts_generically(
    strict_client: httpx.AsyncClient, mirror_url: str, template: str
) -> None:
    url = template.format(port=5000)
    response = await strict_client.post(mirror_url, json=oci_body(url), headers=auth())

    assert_api_error(response, 400, "invalid_request")
    assert response.json()["detail"] == GENERIC
    assert (await strict_client.get(mirror_url, headers=auth())).status_code == 404


@pytest.mark.usefixtures("lookups")
@pytest.mark.parametrize("template", ALL_URLS.values(), ids=ALL_URLS.keys())
async def test_update_refuses_internal_hosts_and_keeps_the_stored_url(
    strict_client: httpx.AsyncClient,
    mirror_url: str,
    config: dict[str, Any],
    template: str,
) -> None:
    url = template.format(port=5000)
    body = {"external_registry_url": url, "sync_interval": 7200}
    response = await strict_client.put(mirror_url, json=body, headers=auth())

    assert_api_error(response, 400, "invalid_request")
    assert response.json()["detail"] == GENERIC
    stored = (await strict_client.get(mirror_url, headers=auth())).json()
    assert stored["external_registry_url"] == config["external_registry_url"]
    assert stored["sync_interval"] == config["sync_interval"], "a refused PUT changes nothing"


@pytest.mark.usefixtures("org", "lookups")
@pytest.mark.parametrize(("template", "reachable"), BYPASSES.values(), ids=BYPASSES.keys())
async def test_verify_refuses_a_stored_url_the_rules_no_longer_allow(
    open_client: httpx.AsyncClient,
    strict_client: httpx.AsyncClient,
    mirror_url: str,
    registry: RegistryServer,
    template: str,
    reachable: bool,
) -> None:
    """Stored while loopback was allowed; verified after the operator removed it."""
    url = template.format(port=registry.port)
    created = await open_client.post(mirror_url, json=oci_body(url), headers=auth())
    assert created.status_code == 201, created.text
    before = registry.mark()

    response = await strict_client.post(f"{mirror_url}/verify", headers=auth())

    assert response.status_code == 200, response.text
    assert response.json() == {"success": False, "message": GENERIC}
    assert registry.requests(since=before) == []
    if reachable:  # the control: under the old rules the same config reaches the registry
        await open_client.post(f"{mirror_url}/verify", headers=auth())
        assert registry.requests(since=before) != []


@pytest.mark.usefixtures("org")
async def test_verify_refuses_a_name_that_now_resolves_to_loopback(
    strict_client: httpx.AsyncClient,
    mirror_url: str,
    registry: RegistryServer,
    fake_dns: FakeDns,
) -> None:
    """DNS rebinding: public when the config was saved, loopback when it is used."""
    fake_dns.answer("registry.rebind.test", "93.184.216.34")
    url = f"http://registry.rebind.test:{registry.port}"
    created = await strict_client.post(mirror_url, json=oci_body(url), headers=auth())
    assert created.status_code == 201, created.text

    fake_dns.answer("registry.rebind.test", "127.0.0.1")
    before = registry.mark()
    response = await strict_client.post(f"{mirror_url}/verify", headers=auth())

    assert response.json() == {"success": False, "message": GENERIC}
    assert registry.requests(since=before) == []


@pytest.mark.usefixtures("org")
async def test_a_proxy_on_an_internal_host_is_refused(
    strict_client: httpx.AsyncClient, mirror_url: str, registry: RegistryServer
) -> None:
    body = oci_body("http://8.8.8.8:5000")  # a public source: passes the rules
    body["external_registry_config"] = {"proxy": {"http_proxy": registry.url}}
    before = registry.mark()

    created = await strict_client.post(mirror_url, json=body, headers=auth())
    await strict_client.post(f"{mirror_url}/verify", headers=auth())

    assert registry.requests(since=before) == [], "the internal host was reached as a proxy"
    assert_api_error(created, 400, "invalid_request")
    assert created.json()["detail"] == GENERIC
