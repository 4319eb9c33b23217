"""Token verification (python-jose) and encryption of secrets at rest (AES-GCM).

Both are built once from the settings and passed in; nothing here reads the environment.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from jose import jwt
from jose.exceptions import ExpiredSignatureError, JOSEError, JWTClaimsError

from app.config import Settings
from app.errors import InvalidToken

ADMIN_SCOPE = "org:admin"
_ASYMMETRIC_ALGORITHMS = ["RS256", "ES256"]


@dataclass(frozen=True)
class Principal:
    """The caller, as the verified token says."""

    username: str
    scopes: frozenset[str]
    is_superuser: bool


class TokenVerifier:
    """Verifies bearer JWTs with pinned algorithms; ``none`` is never accepted."""

    def __init__(self, settings: Settings) -> None:
        self._key: str | dict[str, Any]
        if settings.jwt_jwks_file is not None:
            self._key = json.loads(settings.jwt_jwks_file.read_text())
            default_algs = _ASYMMETRIC_ALGORITHMS
        elif settings.jwt_public_key_file is not None:
            self._key = settings.jwt_public_key_file.read_text()
            default_algs = _ASYMMETRIC_ALGORITHMS
        elif settings.jwt_secret is not None:
            self._key = settings.jwt_secret.get_secret_value()
            default_algs = ["HS256"]
        else:
            raise ValueError("no JWT key configured")
        algorithms = settings.jwt_algorithms or default_algs
        if any(alg.lower() == "none" for alg in algorithms):
            raise ValueError("ORGMIRROR_JWT_ALGORITHMS must not contain 'none'")
        self._algorithms = algorithms
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._superusers = frozenset(settings.superusers)

    def verify(self, token: str) -> Principal:
        """Decode and check a token, or raise InvalidToken naming what is wrong with it."""
        claims = self._decode(token)
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise InvalidToken("Token has no 'sub' (username) claim")
        scope = claims.get("scope", "")
        if not isinstance(scope, str):
            raise InvalidToken("Token 'scope' claim must be a space-separated string")
        return Principal(
            username=subject,
            scopes=frozenset(scope.split()),
            is_superuser=subject in self._superusers,
        )

    def _decode(self, token: str) -> dict[str, Any]:
        options = {
            "require_exp": True,
            "verify_aud": self._audience is not None,
            "require_aud": self._audience is not None,
            "require_iss": self._issuer is not None,
        }
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key_for(token),
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                options=options,
            )
        except ExpiredSignatureError as exc:
            raise InvalidToken("Token has expired; request a new one") from exc
        except JWTClaimsError as exc:
            raise InvalidToken(f"Token claims are not accepted: {exc}") from exc
        except JOSEError as exc:
            raise InvalidToken(f"Token is invalid: {exc}") from exc
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:
            # Malformed headers or claims that python-jose does not wrap in its own errors.
            raise InvalidToken(f"Token is malformed ({exc.__class__.__name__})") from exc
        if not isinstance(claims, dict):
            raise InvalidToken("Token payload is not a JSON object")
        return claims

    def _key_for(self, token: str) -> str | dict[str, Any]:
        """With a JWKS, the key named by the token's ``kid`` (an unknown kid is refused)."""
        if not isinstance(self._key, dict):
            return self._key
        kid = jwt.get_unverified_header(token).get("kid")
        if kid is None:
            return self._key
        for key in self._key.get("keys", []):
            if isinstance(key, dict) and key.get("kid") == kid:
                return key
        raise InvalidToken(f"Token is signed with an unknown key (kid {kid!r})")


def mint_token(
    settings: Settings, *, username: str, scopes: list[str], lifetime_seconds: int, now: int
) -> str:
    """An HS256 token signed with the configured secret (for ``orgmirror token``)."""
    if settings.jwt_secret is None:
        raise ValueError(
            "orgmirror token needs ORGMIRROR_JWT_SECRET; with a public key or JWKS configured, "
            "tokens come from your identity provider"
        )
    claims: dict[str, Any] = {
        "sub": username,
        "scope": " ".join(scopes),
        "iat": now,
        "exp": now + lifetime_seconds,
    }
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256")


class SecretDecryptionError(RuntimeError):
    """A stored secret cannot be decrypted with any configured key."""


class SecretBox:
    """AES-256-GCM with a key ring: the first key encrypts, every key decrypts.

    Stored form: ``v1:<key id>:<base64(nonce + ciphertext)>``. The key id (a hash prefix of
    the key) is what lets an operator rotate keys: put the new key first and keep the old one
    after it until every secret has been re-encrypted.
    """

    def __init__(self, keys_setting: str) -> None:
        keys = [_decode_key(part) for part in keys_setting.split(",") if part.strip()]
        if not keys:
            raise ValueError("ORGMIRROR_ENCRYPTION_KEY is empty")
        self._ring = {_key_id(key): AESGCM(key) for key in keys}
        self._current_id = _key_id(keys[0])

    def encrypt(self, plaintext: str, *, purpose: str) -> str:
        nonce = os.urandom(12)
        sealed = self._ring[self._current_id].encrypt(nonce, plaintext.encode(), purpose.encode())
        blob = base64.urlsafe_b64encode(nonce + sealed).decode()
        return f"v1:{self._current_id}:{blob}"

    def decrypt(self, stored: str, *, purpose: str) -> str:
        try:
            version, key_id, blob = stored.split(":", 2)
            raw = base64.urlsafe_b64decode(blob)
            cipher = self._ring[key_id]
            if version != "v1":
                raise ValueError(version)
            return cipher.decrypt(raw[:12], raw[12:], purpose.encode()).decode()
        except Exception as exc:
            raise SecretDecryptionError(
                "A stored secret cannot be decrypted: is ORGMIRROR_ENCRYPTION_KEY the key it "
                "was written with (keep old keys after the new one when rotating)?"
            ) from exc


def _decode_key(text: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    except ValueError as exc:
        raise ValueError("ORGMIRROR_ENCRYPTION_KEY must be base64 of 32 random bytes") from exc
    if len(key) != 32:
        raise ValueError(
            "ORGMIRROR_ENCRYPTION_KEY must be base64 of 32 random bytes "
            "(generate one with: python -c 'import os,base64;"
            "print(base64.urlsafe_b64encode(os.urandom(32)).decode())')"
        )
    return key


def _key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:12]
