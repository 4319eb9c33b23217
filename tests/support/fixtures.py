"""pytest fixtures for real registries; register with `pytest_plugins = ["tests.support.fixtures"]`.

Scopes: key material (CA, server certificate, token-signing key) and the token server are
per session — generating them is the only non-trivial cost and nothing mutates them. The
registries themselves are per test: one starts in ≈ 30 ms, and mirror tests push, delete and
count requests, which must not leak between tests. Every process is stopped at teardown,
also when the test fails.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.certs import CertificateAuthority, ServerCert, SigningKey, make_signing_key
from tests.support.harbor import HarborEmulator
from tests.support.quay import QuayEmulator
from tests.support.registry_server import RegistryServer, TokenAuth
from tests.support.tokenauth import RulePolicy, TokenIssuer, TokenServer, member_policy

ROBOT_USER = "myorg+robot"
ROBOT_PASSWORD = "robot-secret-1"
TOKEN_USER = "alice"
TOKEN_PASSWORD = "alice-secret-1"

RegistryFactory = Callable[..., RegistryServer]
_service_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def tls_ca(tmp_path_factory: pytest.TempPathFactory) -> CertificateAuthority:
    """A CA generated for this session; `tls_ca.ca_file`, `tls_ca.ssl_context()`."""
    return CertificateAuthority(tmp_path_factory.mktemp("tls-ca"))


@pytest.fixture(scope="session")
def ca_dir(tls_ca: CertificateAuthority) -> Path:
    """A directory holding only `ca.crt`, for skopeo `--src-cert-dir`/`--dest-cert-dir`."""
    return tls_ca.ca_dir


@pytest.fixture(scope="session")
def server_cert(tls_ca: CertificateAuthority) -> ServerCert:
    """A certificate for 127.0.0.1 and localhost signed by `tls_ca`."""
    return tls_ca.issue_server_cert()


@pytest.fixture(scope="session")
def token_signing_key(tmp_path_factory: pytest.TempPathFactory) -> SigningKey:
    return make_signing_key(tmp_path_factory.mktemp("token-key"))


@pytest.fixture(scope="session")
def token_issuer(token_signing_key: SigningKey) -> TokenIssuer:
    return TokenIssuer(token_signing_key)


@pytest.fixture(scope="session")
def token_server(token_issuer: TokenIssuer) -> Iterator[TokenServer]:
    """The realm shared by every token registry of the session (one service per test)."""
    with TokenServer(token_issuer) as server:
        yield server


@pytest.fixture
def registry_factory(tmp_path: Path) -> Iterator[RegistryFactory]:
    """Start extra registries: `registry_factory(users=…, tls=…, token=…)`; all are stopped
    at teardown. For tests that need a source and a target of the same flavour."""
    started: list[RegistryServer] = []

    def start(**options: Any) -> RegistryServer:
        workdir = tmp_path / f"registry-{len(started)}"
        workdir.mkdir()
        server = RegistryServer(workdir, **options)
        started.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def registry(registry_factory: RegistryFactory) -> RegistryServer:
    """An empty plain-HTTP registry without auth."""
    return registry_factory()


@pytest.fixture
def auth_registry(registry_factory: RegistryFactory) -> RegistryServer:
    """An empty plain-HTTP registry with htpasswd auth for ROBOT_USER / ROBOT_PASSWORD."""
    return registry_factory(users={ROBOT_USER: ROBOT_PASSWORD})


@pytest.fixture
def tls_registry(
    registry_factory: RegistryFactory, server_cert: ServerCert, tls_ca: CertificateAuthority
) -> RegistryServer:
    """An empty HTTPS registry whose certificate is signed by `tls_ca` (see `ca_dir`)."""
    return registry_factory(tls=server_cert, ca_file=tls_ca.ca_file)


@pytest.fixture
def token_policy() -> RulePolicy:
    """Who may do what on `token_registry`: TOKEN_USER everything, anonymous nothing.
    Tests change it in place (`token_policy.allow(None, "myorg/*", "pull")`)."""
    return member_policy({TOKEN_USER: TOKEN_PASSWORD})


@pytest.fixture
def token_registry(
    registry_factory: RegistryFactory,
    token_server: TokenServer,
    token_policy: RulePolicy,
    token_signing_key: SigningKey,
) -> Iterator[RegistryServer]:
    """An empty registry behind token auth, its own service on the shared `token_server`."""
    service = f"registry-{next(_service_numbers)}"
    token_service = token_server.add_service(service, token_policy)
    token = TokenAuth(
        realm=token_server.realm,
        service=service,
        issuer=token_service.issuer.issuer,
        rootcertbundle=token_signing_key.cert_file,
    )
    try:
        yield registry_factory(token=token)
    finally:
        token_server.remove_service(service)


@pytest.fixture
async def registry_client(tls_ca: CertificateAuthority) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client trusting the session CA (harmless for plain-HTTP registries)."""
    async with httpx.AsyncClient(verify=tls_ca.ssl_context(), timeout=30.0) as client:
        yield client


# --- Harbor and Quay emulators (tests/support/harbor.py, quay.py) ------------------------------


@pytest.fixture
def harbor(token_signing_key: SigningKey) -> Iterator[HarborEmulator]:
    """A Harbor emulator (API, `/service/token` realm, `/v2/` proxy) in front of its own real
    token-auth registry. Only the admin (HARBOR_ADMIN / HARBOR_ADMIN_PASSWORD) exists: add
    users and projects with `harbor.add_user(…)`, `harbor.add_project(…)`; steer it with
    `harbor.faults`, read `harbor.requests` and `harbor.tokens.issued`."""
    with HarborEmulator(token_signing_key) as emulator:
        yield emulator


@pytest.fixture
def quay(token_signing_key: SigningKey) -> Iterator[QuayEmulator]:
    """A Quay emulator (API, `/v2/auth` realm, `/v2/` proxy) in front of its own real
    token-auth registry, empty: add users, tokens and organizations with `quay.add_user(…)`,
    `quay.add_token(…)`, `quay.add_org(…)`, visibility with `quay.set_public(…)`."""
    with QuayEmulator(token_signing_key) as emulator:
        yield emulator
