"""Token verification options and the secret box, without HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jose import jwk, jwt
from pydantic import SecretStr

from app.config import ConfigurationError, Settings, complete_settings
from app.errors import InvalidToken
from app.security import SecretBox, SecretDecryptionError, TokenVerifier, mint_token


def _settings(**values: Any) -> Settings:
    return Settings(database_url="sqlite+aiosqlite:///:memory:", **values)


def _claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": "alice", "scope": "org:admin", "exp": now + 600, **extra}


def _pem_pair(kind: str) -> tuple[str, str]:
    key: Any = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if kind == "rsa"
        else ec.generate_private_key(ec.SECP256R1())
    )
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@pytest.mark.parametrize(("kind", "alg"), [("rsa", "RS256"), ("ec", "ES256")])
def test_public_key_file_verifies_asymmetric_tokens(tmp_path: Path, kind: str, alg: str) -> None:
    private, public = _pem_pair(kind)
    key_file = tmp_path / "key.pem"
    key_file.write_text(public)
    verifier = TokenVerifier(_settings(jwt_public_key_file=key_file))
    principal = verifier.verify(jwt.encode(_claims(), private, algorithm=alg))
    assert principal.username == "alice"
    assert "org:admin" in principal.scopes


def test_hs256_signed_with_public_key_is_refused(tmp_path: Path) -> None:
    """The classic HS/RS confusion: the public key used as an HMAC secret."""
    _, public = _pem_pair("rsa")
    key_file = tmp_path / "key.pem"
    key_file.write_text(public)
    verifier = TokenVerifier(_settings(jwt_public_key_file=key_file))
    header = base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()).rstrip(
        b"="
    )
    payload = base64.urlsafe_b64encode(json.dumps(_claims()).encode()).rstrip(b"=")
    signing_input = header + b"." + payload
    signature = hmac.new(public.encode(), signing_input, hashlib.sha256).digest()
    forged = (signing_input + b"." + base64.urlsafe_b64encode(signature).rstrip(b"=")).decode()
    with pytest.raises(InvalidToken):
        verifier.verify(forged)


def test_jwks_file_selects_key_by_kid(tmp_path: Path) -> None:
    private, public = _pem_pair("rsa")
    public_jwk = jwk.construct(public, algorithm="RS256").to_dict()
    public_jwk["kid"] = "key-1"
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps({"keys": [public_jwk]}))
    verifier = TokenVerifier(_settings(jwt_jwks_file=jwks_file))
    token = jwt.encode(_claims(), private, algorithm="RS256", headers={"kid": "key-1"})
    assert verifier.verify(token).username == "alice"


def test_issuer_and_audience_are_checked() -> None:
    verifier = TokenVerifier(
        _settings(
            jwt_secret=SecretStr("s" * 32), jwt_issuer="https://idp", jwt_audience="orgmirror"
        )
    )
    good = jwt.encode(_claims(iss="https://idp", aud="orgmirror"), "s" * 32, algorithm="HS256")
    assert verifier.verify(good).username == "alice"
    for bad in (_claims(iss="https://evil", aud="orgmirror"), _claims(iss="https://idp", aud="x")):
        with pytest.raises(InvalidToken):
            verifier.verify(jwt.encode(bad, "s" * 32, algorithm="HS256"))


def test_none_algorithm_cannot_be_configured() -> None:
    with pytest.raises(ValueError, match="none"):
        TokenVerifier(_settings(jwt_secret=SecretStr("s"), jwt_algorithms=["none"]))


def test_superusers_from_settings() -> None:
    settings = _settings(jwt_secret=SecretStr("s" * 32), superusers=["root"])
    verifier = TokenVerifier(settings)
    token = mint_token(
        settings, username="root", scopes=["org:admin"], lifetime_seconds=60, now=int(time.time())
    )
    assert verifier.verify(token).is_superuser is True


def test_settings_parse_comma_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORGMIRROR_SUPERUSERS", "root, admin")
    monkeypatch.setenv("ORGMIRROR_SSRF_ALLOWED_HOSTS", "10.0.0.0/8 registry.corp")
    settings = Settings()
    assert settings.superusers == ["root", "admin"]
    assert settings.ssrf_allowed_hosts == ["10.0.0.0/8", "registry.corp"]


def test_secret_box_round_trip_and_purpose_binding() -> None:
    box = SecretBox(base64.urlsafe_b64encode(os.urandom(32)).decode())
    sealed = box.encrypt("p@ss", purpose="robot:a+b")
    assert "p@ss" not in sealed
    assert sealed.startswith("v1:")
    assert box.decrypt(sealed, purpose="robot:a+b") == "p@ss"
    with pytest.raises(SecretDecryptionError):
        box.decrypt(sealed, purpose="robot:other+b")


def test_secret_box_key_rotation() -> None:
    old = base64.urlsafe_b64encode(os.urandom(32)).decode()
    new = base64.urlsafe_b64encode(os.urandom(32)).decode()
    sealed_old = SecretBox(old).encrypt("v", purpose="p")
    rotated = SecretBox(f"{new},{old}")
    assert rotated.decrypt(sealed_old, purpose="p") == "v"
    assert rotated.encrypt("v", purpose="p").split(":")[1] != sealed_old.split(":")[1]
    with pytest.raises(SecretDecryptionError):
        SecretBox(new).decrypt(sealed_old, purpose="p")


def test_secret_box_rejects_short_keys() -> None:
    with pytest.raises(ValueError, match="32 random bytes"):
        SecretBox(base64.urlsafe_b64encode(b"short").decode())


def test_production_mode_requires_secrets() -> None:
    with pytest.raises(ConfigurationError, match=r"ORGMIRROR_JWT_SECRET.*ORGMIRROR_ENCRYPTION_KEY"):
        complete_settings(Settings(database_url="postgresql+asyncpg://x/y"))


def test_embedded_mode_generates_secrets_once(tmp_path: Path) -> None:
    first = complete_settings(Settings(data_dir=tmp_path))
    second = complete_settings(Settings(data_dir=tmp_path))
    assert first.jwt_secret is not None
    assert second.jwt_secret is not None
    assert first.jwt_secret.get_secret_value() == second.jwt_secret.get_secret_value()
    assert (tmp_path / "secrets.json").stat().st_mode & 0o777 == 0o600


def test_quay_target_requires_an_api_token(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="ORGMIRROR_TARGET_API_TOKEN"):
        complete_settings(Settings(data_dir=tmp_path, target_kind="quay"))
    ok = complete_settings(
        Settings(data_dir=tmp_path, target_kind="quay", target_api_token=SecretStr("t"))
    )
    assert ok.target_kind == "quay"
