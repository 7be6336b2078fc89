"""Verifying OpenID Connect bearer tokens against the issuer's published keys.

The issuer's JWKS is found through its discovery document, cached, and fetched again
when a token names a key id the cache does not hold (the issuer rotated its keys). Only
the configured issuer is ever contacted: a token naming any other issuer is refused
before anything is fetched.
"""

from __future__ import annotations

import asyncio
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from broker.errors import BadToken, IssuerUnavailable, TokenExpired, UnknownIssuer
from broker.identity.principal import JOB_ROLE, Principal, Role

__all__ = ["ALGORITHMS", "ClaimNames", "TokenVerifier", "fetch_discovery"]

ALGORITHMS = ("EdDSA", "RS256", "ES256")


_VERIFIED_KEPT = 4096
# The broker records who did what by the token's subject and agency, in columns of 200
# and 63 characters (an agency id's length); a display name is held to the subject's.
_SUBJECT_MOST, _AGENCY_MOST, _NAME_MOST = 200, 63, 200


@dataclass(frozen=True, slots=True)
class ClaimNames:
    """Which claims carry the role, the agency and the display name."""

    role: str = "role"
    agency: str = "agency"
    name: str = "name"
    job_role: str = "job_role"


_SAID_MOST = 60


def _said(value: object) -> str:
    """What an unverified token says of itself, quoted for a refusal: anyone can write
    anything there, so a long value is cut short."""
    shown = repr(value)
    return shown if len(shown) <= _SAID_MOST else shown[: _SAID_MOST - 2] + "…" + shown[-1]


class TokenVerifier:
    """Turns a bearer token into a ``Principal`` or says exactly why it cannot."""

    def __init__(
        self,
        issuer: str,
        audience: str,
        http: httpx.AsyncClient,
        *,
        claims: ClaimNames | None = None,
        algorithms: tuple[str, ...] = ALGORITHMS,
        jwks_ttl_seconds: float = 3600.0,
        leeway_seconds: int = 30,
        min_refresh_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self._http = http
        self._claims = claims or ClaimNames()
        self._algorithms = algorithms
        self._ttl = jwks_ttl_seconds
        self._leeway = leeway_seconds
        # A token with an unknown key id makes us refetch the JWKS, but not more often
        # than this, so a stream of forged key ids cannot turn the broker on the issuer.
        self._min_refresh = min_refresh_seconds
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()
        # Tokens already verified: a caseworker's every request carries the same one.
        # Token -> (principal, expiry as a Unix time, key id).
        self._verified: dict[str, tuple[Principal, float, str]] = {}

    async def verify(self, token: str) -> Principal:
        """Check ``token`` and return whom it stands for.

        Raises ``UnknownIssuer``, ``TokenExpired`` or ``BadToken`` (each naming the
        check that failed), or ``IssuerUnavailable`` if the issuer's keys cannot be had.

        A token verified before is taken from memory until it expires, as long as the
        key that signed it is still among the issuer's current keys.
        """
        known = self._verified.get(token)
        if known is not None:
            principal, expires, signed_by = known
            fresh = time.time() <= expires + self._leeway
            if fresh and signed_by in self._keys and not self._stale():
                return principal
            del self._verified[token]
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise BadToken("the bearer token is not a well-formed JWT; sign in again") from None
        issuer = unverified.get("iss")
        if not isinstance(issuer, str) or issuer.rstrip("/") != self.issuer:
            raise UnknownIssuer(
                f"tokens from {_said(issuer)} are not accepted; sign in through {self.issuer}"
            )
        algorithm = header.get("alg")
        if algorithm not in self._algorithms:
            raise BadToken(
                f"signing algorithm {_said(algorithm)} is not accepted; "
                f"the broker accepts {', '.join(self._algorithms)}"
            )
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise BadToken("the token names no signing key ('kid'); sign in again")
        key = await self._key(kid)
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[algorithm],
                audience=self.audience,
                issuer=issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenExpired("the bearer token has expired; sign in again") from None
        except jwt.InvalidAudienceError:
            raise BadToken(
                f"the token is not meant for this broker; its audience must be {self.audience!r}"
            ) from None
        except jwt.ImmatureSignatureError:
            raise BadToken("the token is not valid yet; check the clocks and retry") from None
        except jwt.InvalidSignatureError:
            raise BadToken(
                f"the token's signature does not verify under key {_said(kid)}"
            ) from None
        except jwt.PyJWTError as exc:
            raise BadToken(f"the bearer token was refused: {exc}") from None
        principal = self._principal(claims)
        if len(self._verified) >= _VERIFIED_KEPT:
            del self._verified[next(iter(self._verified))]
        self._verified[token] = (principal, float(claims["exp"]), kid)
        return principal

    def _principal(self, claims: dict[str, Any]) -> Principal:
        names = self._claims
        role, agency = claims.get(names.role), claims.get(names.agency)
        try:
            parsed = Role(str(role))
        except ValueError:
            allowed = ", ".join(r.value for r in Role)
            raise BadToken(
                f"the token's {names.role!r} claim must be one of {allowed}; ask an administrator"
            ) from None
        if not isinstance(agency, str) or not agency:
            raise BadToken(f"the token has no {names.agency!r} claim naming the caller's agency")
        _storable(agency, names.agency, _AGENCY_MOST)
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject.strip():
            raise BadToken(
                "the token's 'sub' claim is empty, so the broker cannot record who acts;"
                " the identity provider must name the caller"
            )
        _storable(subject, "sub", _SUBJECT_MOST)
        name = claims.get(names.name)
        if isinstance(name, str) and name:
            _storable(name, names.name, _NAME_MOST)
        job = claims.get(names.job_role)
        if job is not None and not (isinstance(job, str) and JOB_ROLE.fullmatch(job)):
            raise BadToken(f"the token's {names.job_role!r} claim must be a lower-case job name")
        return Principal(
            subject=subject,
            name=name if isinstance(name, str) and name else subject,
            role=parsed,
            agency=agency,
            job_role=job,
        )

    async def _key(self, kid: str) -> jwt.PyJWK:
        if kid in self._keys and not self._stale():
            return self._keys[kid]
        async with self._lock:
            fetched = self._fetched_at
            recently = fetched is not None and self._clock() - fetched < self._min_refresh
            if self._stale() or (kid not in self._keys and not recently):
                self._keys = await self._fetch_keys()
                self._fetched_at = self._clock()
        try:
            return self._keys[kid]
        except KeyError:
            raise BadToken(
                f"the issuer publishes no key {_said(kid)}; the token was not signed by it"
            ) from None

    def _stale(self) -> bool:
        return self._fetched_at is None or self._clock() - self._fetched_at >= self._ttl

    async def _fetch_keys(self) -> dict[str, jwt.PyJWK]:
        discovery = await fetch_discovery(self._http, self.issuer)
        jwks_uri = discovery.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise IssuerUnavailable(f"the discovery document at {self.issuer} has no jwks_uri")
        document = await _get_json(self._http, jwks_uri)
        keys: dict[str, jwt.PyJWK] = {}
        for item in document.get("keys", []):
            if not isinstance(item, dict) or not isinstance(item.get("kid"), str):
                continue
            try:
                keys[item["kid"]] = jwt.PyJWK(item)
            except jwt.PyJWTError:
                continue  # a key type we do not use (e.g. an encryption key)
        return keys


def _storable(value: str, claim: str, most: int) -> None:
    """Raise ``BadToken`` if the claim named ``claim`` cannot be recorded as it is: longer
    than ``most`` characters, or holding a control character (PostgreSQL cannot store
    NUL, and none belongs in a name)."""
    if len(value) > most:
        raise BadToken(
            f"the token's {claim!r} claim is longer than the {most} characters the broker"
            " can record; shorten it at the identity provider"
        )
    if any(unicodedata.category(c) == "Cc" for c in value):
        raise BadToken(
            f"the token's {claim!r} claim holds a control character, which the broker"
            " cannot record; correct it at the identity provider"
        )


async def fetch_discovery(http: httpx.AsyncClient, issuer: str) -> dict[str, Any]:
    """The issuer's OpenID Provider metadata (OpenID Connect Discovery 1.0 section 4).

    Raises ``IssuerUnavailable`` if it cannot be fetched or names another issuer.
    """
    issuer = issuer.rstrip("/")
    discovery = await _get_json(http, f"{issuer}/.well-known/openid-configuration")
    if str(discovery.get("issuer", "")).rstrip("/") != issuer:
        raise IssuerUnavailable(
            f"the discovery document at {issuer} names issuer "
            f"{discovery.get('issuer')!r}; check JUNCTION_OIDC_ISSUER"
        )
    return discovery


async def _get_json(http: httpx.AsyncClient, url: str) -> dict[str, Any]:
    try:
        response = await http.get(url)
        response.raise_for_status()
        document = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise IssuerUnavailable(
            f"cannot fetch {url}: {exc}; check that the identity provider is up"
        ) from None
    if not isinstance(document, dict):
        raise IssuerUnavailable(f"{url} did not return a JSON object")
    return document
