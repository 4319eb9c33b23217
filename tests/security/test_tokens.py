"""Token attacks through the HTTP API (SPEC §1.4, §3.1): each is a 401 ApiError, never a 500.

tests/routers/test_auth.py covers the HS256 basics (bad signature, expiry, ``alg: none`` and
RS256 tokens against an HS256 secret); this file covers the public-key and JWKS
configurations, the ``iss``/``aud`` checks, hostile claim types and hostile sizes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jose import jwk, jwt

from app.main import create_app
from app.runtime import Runtime
from tests.conftest import JWT_SECRET
from tests.routers.test_mirror_config import assert_api_error

ISSUER = "https://idp.example.com"
AUDIENCE = "orgmirror"
KID = "idp-key-1"


def b64(data: bytes | dict[str, Any] | list[Any]) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def hs256(header: dict[str, Any], claims: dict[str, Any] | bytes, secret: bytes) -> str:
    """Sign by hand: python-jose refuses to HMAC with a public key, an attacker does not."""
    signing_input = f"{b64(header)}.{b64(claims)}".encode()
    signature = hmac.new(secret, signing_input, hashlib.sha256).digest()
    return f"{signing_input.decode()}.{b64(signature)}"


def claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": "alice", "scope": "org:admin", "iat": now, "exp": now + 600, **extra}


def _private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@dataclass(frozen=True)
class Keys:
    private: str  # the identity provider's
    public: str
    public_der: bytes
    jwk: dict[str, Any]
    attacker: str  # a key pair nobody trusts
    attacker_public: str
    pem_file: Path
    jwks_file: Path

    def rs256(self, body: dict[str, Any], *, key: str | None = None, **headers: Any) -> str:
        return jwt.encode(body, key or self.private, algorithm="RS256", headers=headers or None)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    directory = tmp_path_factory.mktemp("jwt-keys")
    trusted = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = trusted.public_key()
    public_pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public_jwk = {**jwk.RSAKey(public_pem, "RS256").to_dict(), "kid": KID, "use": "sig"}
    pem_file = directory / "idp.pem"
    pem_file.write_text(public_pem)
    jwks_file = directory / "jwks.json"
    jwks_file.write_text(json.dumps({"keys": [public_jwk]}))
    attacker_public = (
        attacker.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return Keys(
        private=_private_pem(trusted),
        public=public_pem,
        public_der=der,
        jwk=public_jwk,
        attacker=_private_pem(attacker),
        attacker_public=attacker_public,
        pem_file=pem_file,
        jwks_file=jwks_file,
    )


@pytest.fixture
def backend() -> str:
    """Tokens are judged before the database is touched: one backend is enough here."""
    return "sqlite"


Caller = Callable[[str], Awaitable[httpx.Response]]
VERIFIERS: dict[str, dict[str, Any]] = {
    "public key": {"jwt_public_key_file": "pem"},
    "jwks": {"jwt_jwks_file": "jwks"},
    "secret with iss and aud": {"jwt_issuer": ISSUER, "jwt_audience": AUDIENCE},
    "public key, HS256 also allowed": {
        "jwt_public_key_file": "pem",
        "jwt_algorithms": ["RS256", "HS256"],
    },
}


@pytest.fixture
async def call_with(
    runtime: Runtime, keys: Keys, org: str
) -> AsyncIterator[Callable[[str], Caller]]:
    """``call_with(verifier)(token)``: GET the org's mirror on an app that verifies tokens
    as VERIFIERS[verifier] says (same database, where alice administers ``myorg``)."""
    opened: list[tuple[Runtime, httpx.AsyncClient]] = []

    def build(verifier: str) -> Caller:
        files = {"pem": keys.pem_file, "jwks": keys.jwks_file}
        update = {
            k: files.get(v, v) if isinstance(v, str) else v for k, v in VERIFIERS[verifier].items()
        }
        settings = runtime.settings.model_copy(update=update)
        built = Runtime.assemble(settings, runtime.engine, runtime.sessionmaker)
        transport = httpx.ASGITransport(app=create_app(runtime=built))
        http = httpx.AsyncClient(transport=transport, base_url="http://testserver")
        opened.append((built, http))

        async def call(token: str) -> httpx.Response:
            headers = {"Authorization": f"Bearer {token}"}
            return await http.get(f"/api/v1/organization/{org}/mirror", headers=headers)

        return call

    yield build
    for built, http in opened:
        await http.aclose()
        await built.http.aclose()


def assert_401(response: httpx.Response) -> None:
    assert_api_error(response, 401, "invalid_token")
    assert response.headers["www-authenticate"].startswith("Bearer")


def assert_accepted(response: httpx.Response) -> None:
    """Past authentication: alice administers myorg, which has no mirror config yet."""
    assert response.status_code == 404, response.text


# --- the controls: a proper token passes each verifier -------------------------------------


@pytest.mark.parametrize("verifier", ["public key", "jwks", "public key, HS256 also allowed"])
async def test_a_token_from_the_identity_provider_is_accepted(
    call_with: Callable[[str], Caller], keys: Keys, verifier: str
) -> None:
    assert_accepted(await call_with(verifier)(keys.rs256(claims(), kid=KID)))


async def test_a_token_with_issuer_and_audience_is_accepted(
    call_with: Callable[[str], Caller],
) -> None:
    token = jwt.encode(claims(iss=ISSUER, aud=AUDIENCE), JWT_SECRET, algorithm="HS256")
    assert_accepted(await call_with("secret with iss and aud")(token))


# --- algorithm confusion and alg: none -----------------------------------------------------


def _hmac_secrets(keys: Keys) -> dict[str, bytes]:
    return {
        "pem": keys.public.encode(),
        "pem without newline": keys.public.strip().encode(),
        "der": keys.public_der,
        "jwk json": json.dumps(keys.jwk).encode(),
        "modulus": keys.jwk["n"].encode(),
    }


@pytest.mark.parametrize("secret", ["pem", "pem without newline", "der", "jwk json", "modulus"])
@pytest.mark.parametrize("verifier", ["public key", "jwks"])
async def test_hs256_signed_with_the_public_key_is_401(
    call_with: Callable[[str], Caller], keys: Keys, verifier: str, secret: str
) -> None:
    """HS/RS confusion: the public key used as an HMAC secret."""
    forged = hs256(
        {"alg": "HS256", "typ": "JWT", "kid": KID}, claims(), _hmac_secrets(keys)[secret]
    )
    assert_401(await call_with(verifier)(forged))


@pytest.mark.parametrize(
    ("verifier", "alg"),
    [
        ("jwks", "ES256"),  # the default algorithm list with an RSA JWKS: unauthenticated 500
        ("public key, HS256 also allowed", "HS256"),
    ],
)
async def test_an_alg_that_does_not_fit_the_key_is_401(
    call_with: Callable[[str], Caller], keys: Keys, verifier: str, alg: str
) -> None:
    forged = hs256({"alg": alg, "typ": "JWT", "kid": KID}, claims(), keys.public.encode())
    assert_401(await call_with(verifier)(forged))


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
@pytest.mark.parametrize("signature", ["", "e30"])
@pytest.mark.parametrize("verifier", ["jwks", "public key", "secret with iss and aud"])
async def test_alg_none_is_401(
    call_with: Callable[[str], Caller], verifier: str, alg: str, signature: str
) -> None:
    body = claims(iss=ISSUER, aud=AUDIENCE)
    token = f"{b64({'alg': alg, 'typ': 'JWT', 'kid': KID})}.{b64(body)}.{signature}"
    assert_401(await call_with(verifier)(token))


# --- keys: kid, embedded keys --------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"kid": "unknown-key"},
        {"kid": KID},  # the trusted key's id on the attacker's signature
        {"kid": "../../../../dev/null"},
        {"jwk": "attacker"},  # a key embedded in the token itself
        {"jku": "http://127.0.0.1:1/jwks.json"},
        {"x5u": "http://127.0.0.1:1/cert.pem"},
    ],
    ids=["unknown kid", "trusted kid", "path kid", "embedded jwk", "jku", "x5u"],
)
@pytest.mark.parametrize("verifier", ["jwks", "public key"])
async def test_a_token_signed_by_an_untrusted_key_is_401(
    call_with: Callable[[str], Caller], keys: Keys, verifier: str, headers: dict[str, Any]
) -> None:
    if headers.get("jwk") == "attacker":
        headers = {"jwk": jwk.RSAKey(keys.attacker_public, "RS256").to_dict()}
    token = keys.rs256(claims(), key=keys.attacker, **headers)
    assert_401(await call_with(verifier)(token))


async def test_a_kid_missing_from_the_jwks_is_401(
    call_with: Callable[[str], Caller], keys: Keys
) -> None:
    token = keys.rs256(claims(), kid="not-in-the-jwks")
    assert_401(await call_with("jwks")(token))


# --- claims: expiry, issuer, audience, types -----------------------------------------------


def _signed(verifier: str, keys: Keys, body: dict[str, Any]) -> str:
    if verifier == "secret with iss and aud":
        return jwt.encode(body, JWT_SECRET, algorithm="HS256")
    return keys.rs256(body, kid=KID)


BAD_CLAIMS: dict[str, dict[str, Any]] = {
    "expired": {"exp": int(time.time()) - 60},
    "expired long ago": {"exp": 1},
    "not yet valid": {"nbf": int(time.time()) + 3600},
    "exp as text": {"exp": "tomorrow"},
    "scope as a list": {"scope": ["org:admin"]},
    "scope as an object": {"scope": {"org:admin": True}},
    "sub as a number": {"sub": 1},
    "sub empty": {"sub": ""},
    "sub as a list": {"sub": ["alice"]},
}


@pytest.mark.parametrize("kind", BAD_CLAIMS)
@pytest.mark.parametrize("verifier", ["jwks", "secret with iss and aud"])
async def test_bad_claims_are_401(
    call_with: Callable[[str], Caller], keys: Keys, verifier: str, kind: str
) -> None:
    body = claims(iss=ISSUER, aud=AUDIENCE, **BAD_CLAIMS[kind])
    assert_401(await call_with(verifier)(_signed(verifier, keys, body)))


@pytest.mark.parametrize("verifier", ["jwks", "secret with iss and aud"])
@pytest.mark.parametrize("missing", ["sub", "exp"])
async def test_a_token_without_a_required_claim_is_401(
    call_with: Callable[[str], Caller], keys: Keys, verifier: str, missing: str
) -> None:
    body = claims(iss=ISSUER, aud=AUDIENCE)
    del body[missing]
    assert_401(await call_with(verifier)(_signed(verifier, keys, body)))


ISSUER_AUDIENCE: dict[str, dict[str, Any]] = {
    "wrong issuer": {"iss": "https://evil.example.com", "aud": AUDIENCE},
    "issuer with trailing slash": {"iss": ISSUER + "/", "aud": AUDIENCE},
    "issuer as a list": {"iss": [ISSUER], "aud": AUDIENCE},
    "no issuer": {"aud": AUDIENCE},
    "wrong audience": {"iss": ISSUER, "aud": "another-service"},
    "audience list without ours": {"iss": ISSUER, "aud": ["another-service"]},
    "audience as an object": {"iss": ISSUER, "aud": {"orgmirror": True}},
}


@pytest.mark.parametrize("kind", ISSUER_AUDIENCE)
async def test_wrong_issuer_or_audience_is_401(
    call_with: Callable[[str], Caller], kind: str
) -> None:
    token = jwt.encode(claims(**ISSUER_AUDIENCE[kind]), JWT_SECRET, algorithm="HS256")
    assert_401(await call_with("secret with iss and aud")(token))


async def test_a_token_without_audience_is_401_when_one_is_configured(
    call_with: Callable[[str], Caller],
) -> None:
    token = jwt.encode(claims(iss=ISSUER), JWT_SECRET, algorithm="HS256")
    assert_401(await call_with("secret with iss and aud")(token))


@pytest.mark.parametrize(
    "bad",
    [{"exp": [1]}, {"exp": None}, {"exp": 1e400}, {"nbf": [1]}, {"iat": {}}],
    ids=["exp list", "exp null", "exp infinite", "nbf list", "iat object"],
)
async def test_non_numeric_time_claims_are_401(
    call_with: Callable[[str], Caller], bad: dict[str, Any]
) -> None:
    token = jwt.encode(claims(iss=ISSUER, aud=AUDIENCE, **bad), JWT_SECRET, algorithm="HS256")
    assert_401(await call_with("secret with iss and aud")(token))


# --- hostile shapes and sizes --------------------------------------------------------------

NOT_UTF8 = bytes([0xFF, 0xFE])
HOSTILE = {
    "one megabyte of garbage": "A" * 1_000_000,
    "huge segments": ".".join(["A" * 400_000] * 3),
    "huge unsigned claims": f"{b64({'alg': 'RS256'})}.{b64(claims(pad='x' * 500_000))}.AAAA",
    "empty segments": "..",
    "four segments": "a.b.c.d",
    "five segments (jwe)": "a.b.c.d.e",
    "header not json": f"{b64(b'not json')}.{b64(claims())}.AAAA",
    "header a list": f"{b64([1])}.{b64(claims())}.AAAA",
    "header not utf-8": f"{b64(NOT_UTF8)}.{b64(claims())}.AAAA",
    "header with a 5000-digit number": f"{b64(b'9' * 5000)}.{b64(claims())}.AAAA",
    "non-base64 text": "!!!.@@@.###",
}


@pytest.mark.parametrize("kind", HOSTILE)
@pytest.mark.parametrize("verifier", ["jwks", "secret with iss and aud"])
async def test_hostile_tokens_are_401(
    call_with: Callable[[str], Caller], verifier: str, kind: str
) -> None:
    assert_401(await call_with(verifier)(HOSTILE[kind]))


@pytest.mark.parametrize("verifier", ["jwks", "secret with iss and aud"])
async def test_a_deeply_nested_header_is_401(
    call_with: Callable[[str], Caller], verifier: str
) -> None:
    nested = b64(b"[" * 100_000 + b"]" * 100_000)
    assert_401(await call_with(verifier)(f"{nested}.{b64(claims())}.AAAA"))
