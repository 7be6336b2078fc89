"""The development OpenID issuer: signs tokens for the demo with a key in ``data_dir``.

DEVELOPMENT ONLY. Anyone who can reach its token endpoint can sign in with any role, so
``JUNCTION_DEV_ISSUER=false`` must be set wherever real people's data is served.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization

from broker.errors import ConfigurationError
from broker.identity.principal import JOB_ROLE, Role
from connectors.protocol.keys import KeyFileError, KeyPair, generate_key_files, load_private_key

__all__ = ["CodeRefused", "DevIssuer", "load_or_create_key"]

# How long an authorization code may wait for its exchange (RFC 6749 section 4.1.2
# recommends at most ten minutes).
CODE_SECONDS = 60


class CodeRefused(Exception):
    """An authorization code exchange the issuer refuses; ``error`` is the OAuth error
    code (RFC 6749 section 5.2), ``detail`` says why."""

    def __init__(self, error: str, detail: str) -> None:
        super().__init__(detail)
        self.error = error
        self.detail = detail


@dataclass(frozen=True, slots=True)
class _Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    token: str
    expires: float


def load_or_create_key(path: Path, what: str = "the development issuer key") -> KeyPair:
    """The Ed25519 key at ``path``, created (mode 0600) if missing.

    Raises ``ConfigurationError``, naming the key as ``what``, if the file cannot be
    created or exists but is not an Ed25519 PEM key.
    """
    if not path.exists():
        try:
            return generate_key_files(path.parent, path.stem)
        except KeyFileError:
            pass  # another process created it first; read theirs
        except OSError as exc:
            raise ConfigurationError(f"cannot create {what} {path}: {exc.strerror}") from None
    try:
        return load_private_key(path)
    except KeyFileError as exc:
        raise ConfigurationError(f"{what} is unusable: {exc}") from None


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class DevIssuer:
    """Issues EdDSA-signed access tokens for ``issuer`` and publishes its JWKS."""

    def __init__(
        self,
        key: KeyPair,
        issuer: str,
        audience: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self._key = key
        self._clock = clock
        self._grants: dict[str, _Grant] = {}
        self._lock = threading.Lock()

    @property
    def key_id(self) -> str:
        return self._key.key_id

    def jwks(self) -> dict[str, Any]:
        """The public JSON Web Key Set (RFC 7517; OKP keys per RFC 8037)."""
        raw = self._key.public_key.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return {
            "keys": [
                {
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": _b64url(raw),
                    "kid": self.key_id,
                    "alg": "EdDSA",
                    "use": "sig",
                }
            ]
        }

    def discovery(self) -> dict[str, Any]:
        """The OpenID Provider metadata document (OpenID Connect Discovery 1.0 §3)."""
        return {
            "issuer": self.issuer,
            "jwks_uri": f"{self.issuer}/jwks.json",
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code"],
            "code_challenge_methods_supported": ["S256"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["EdDSA"],
            "token_endpoint_auth_methods_supported": ["none"],
        }

    def grant(self, *, client_id: str, redirect_uri: str, challenge: str, token: str) -> str:
        """An authorization code standing for ``token``, for one exchange by this client
        with this redirect URI and the verifier of this S256 ``challenge``."""
        code = secrets.token_urlsafe(32)
        now = self._clock()
        with self._lock:
            self._grants = {c: g for c, g in self._grants.items() if g.expires > now}
            self._grants[code] = _Grant(
                client_id, redirect_uri, challenge, token, now + CODE_SECONDS
            )
        return code

    def exchange(self, *, code: str, client_id: str, redirect_uri: str, verifier: str) -> str:
        """The access token of ``code``, once (RFC 6749 section 4.1.3, RFC 7636 4.6).

        Raises ``CodeRefused``.
        """
        with self._lock:
            grant = self._grants.pop(code, None)
        if grant is None or grant.expires <= self._clock():
            raise CodeRefused("invalid_grant", "the code is unknown, used or expired")
        if grant.client_id != client_id or grant.redirect_uri != redirect_uri:
            raise CodeRefused("invalid_grant", "the code was issued to another client")
        digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
        challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
        if not hmac.compare_digest(challenge, grant.challenge):
            raise CodeRefused("invalid_grant", "the code verifier does not match the challenge")
        return grant.token

    def mint(
        self,
        *,
        role: Role | str,
        agency: str,
        name: str,
        ttl_seconds: int = 3600,
        job_role: str | None = None,
    ) -> str:
        """A signed access token for a made-up user. Raises ``ValueError`` for bad input."""
        role = Role(role)
        agency, name = agency.strip(), " ".join(name.split())
        if not agency or not name:
            raise ValueError("a development token needs an agency and a display name")
        if not 1 <= ttl_seconds <= 86_400:
            raise ValueError("the lifetime must be between 1 second and 24 hours")
        if job_role and not JOB_ROLE.fullmatch(job_role):
            # The broker would refuse the token at sign-in.
            raise ValueError(
                f"the job role {job_role!r} is not a job name: lower-case letters, digits"
                " and '_' (e.g. social_worker)"
            )
        now = int(self._clock())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": f"dev:{agency}:{name.lower().replace(' ', '.')}",
            "name": name,
            "role": role.value,
            "agency": agency,
            "iat": now,
            "nbf": now,
            "exp": now + ttl_seconds,
        }
        if job_role:
            claims["job_role"] = job_role
        return jwt.encode(
            claims, self._key.private_key, algorithm="EdDSA", headers={"kid": self.key_id}
        )
