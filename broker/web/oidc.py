"""Signing in to the web pages at the organisation's identity provider.

OpenID Connect's authorization code flow with PKCE (RFC 7636, method S256): the sign-in
page sends the browser to the provider's authorization endpoint with a fresh ``state``
and code challenge; the provider sends it back to ``/web/sign-in/callback`` with a code;
the broker exchanges the code (with the verifier only it knows) at the token endpoint for
an access token, which it then verifies like any bearer token (issuer, signature,
audience, role and agency claims) and keeps in the session cookie.

What the broker must remember between the two legs (the state, the verifier) travels in
a short-lived cookie signed with the web session key, so any broker process behind a
load balancer can finish a sign-in another started. The endpoints come from the issuer's
discovery document. A public client (no secret) is the default; with
``JUNCTION_OIDC_CLIENT_SECRET`` the client authenticates with HTTP Basic
(``client_secret_basic``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from broker.errors import IssuerUnavailable
from broker.identity.tokens import fetch_discovery

__all__ = ["CodeFlow", "Pending", "SignInFailed", "code_challenge"]

_COOKIE = "junction_oidc"
# Long enough to type a password and answer a second factor; short enough that a
# forgotten tab cannot be finished tomorrow.
_PENDING_SECONDS = 600
_DISCOVERY_TTL_SECONDS = 3600.0
# How much of the provider's own description of a refusal the page repeats.
_SAID_MOST = 200


class SignInFailed(Exception):
    """The round trip to the identity provider did not end in a token; ``detail`` says
    why, in words for the person signing in."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def code_challenge(verifier: str) -> str:
    """The S256 code challenge of ``verifier`` (RFC 7636 section 4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class Pending:
    """A sign-in sent to the provider and not yet back."""

    state: str
    verifier: str


class CodeFlow:
    """Starts and finishes sign-ins at one issuer for one client."""

    def __init__(
        self,
        *,
        issuer: str,
        client_id: str,
        client_secret: str | None,
        redirect_uri: str,
        scope: str,
        http: httpx.AsyncClient,
        secret: bytes,
        secure: bool,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self._client_id = client_id
        self._client_secret = client_secret
        self._redirect_uri = redirect_uri
        self._scope = scope
        self._http = http
        self._serializer = URLSafeTimedSerializer(secret, salt="junction-oidc-sign-in")
        self._secure = secure
        self._endpoints: tuple[str, str] | None = None
        self._fetched_at = 0.0

    async def start(self) -> tuple[str, Pending]:
        """The provider's authorization URL for a new sign-in, and what to ``remember``
        on the response that sends the browser there.

        Raises ``IssuerUnavailable`` when the provider's discovery document cannot be had.
        """
        authorize, _ = await self._discover()
        pending = Pending(state=secrets.token_urlsafe(32), verifier=secrets.token_urlsafe(64))
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self._client_id,
                "redirect_uri": self._redirect_uri,
                "scope": self._scope,
                "state": pending.state,
                "code_challenge": code_challenge(pending.verifier),
                "code_challenge_method": "S256",
            }
        )
        return f"{authorize}{'&' if '?' in authorize else '?'}{query}", pending

    def remember(self, response: Response, pending: Pending) -> None:
        """Keep ``pending`` in a signed cookie on ``response`` until the browser is back."""
        response.set_cookie(
            _COOKIE,
            self._serializer.dumps({"s": pending.state, "v": pending.verifier}),
            max_age=_PENDING_SECONDS,
            httponly=True,
            # Lax: the provider's redirect back is a top-level GET, which carries it.
            samesite="lax",
            secure=self._secure,
            path="/web/sign-in",
        )

    def pending(self, request: Request) -> Pending | None:
        """The sign-in this browser started here, if its cookie is intact and recent."""
        raw = request.cookies.get(_COOKIE)
        if not raw:
            return None
        try:
            data: Any = self._serializer.loads(raw, max_age=_PENDING_SECONDS)
        except BadSignature:
            return None
        if not isinstance(data, dict):
            return None
        state, verifier = data.get("s"), data.get("v")
        if not isinstance(state, str) or not isinstance(verifier, str):
            return None
        return Pending(state=state, verifier=verifier)

    @staticmethod
    def forget(response: Response) -> None:
        """Drop the pending sign-in's cookie: a code is exchanged once."""
        response.delete_cookie(_COOKIE, path="/web/sign-in")

    async def finish(self, pending: Pending | None, params: dict[str, str]) -> str:
        """The access token for the provider's answer ``params`` (the callback's query).

        Raises ``SignInFailed`` (the provider refused, the answer is not for the sign-in
        this browser started, or the code was not accepted) or ``IssuerUnavailable``.
        """
        # The state is checked first: anyone can send a link to the callback, and only the
        # answer to the sign-in this browser started may put the provider's words on a page.
        if pending is None:
            raise SignInFailed(
                "this sign-in was started too long ago, or in another browser; start again"
            )
        state, code = params.get("state", ""), params.get("code", "")
        if not hmac.compare_digest(state.encode(), pending.state.encode()):
            raise SignInFailed("the identity provider's answer is for another sign-in; start again")
        if "error" in params:
            said = params.get("error_description") or params["error"]
            raise SignInFailed(
                f"the identity provider did not sign you in: {said[:_SAID_MOST]}; start again"
            )
        if not code:
            raise SignInFailed("the identity provider sent no authorization code; start again")
        _, token_endpoint = await self._discover()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self._redirect_uri,
            "code_verifier": pending.verifier,
            "client_id": self._client_id,
        }
        headers = {"accept": "application/json"}
        if self._client_secret is not None:
            # client_secret_basic (RFC 6749 section 2.3.1): both parts form-encoded first.
            pair = f"{quote(self._client_id, safe='')}:{quote(self._client_secret, safe='')}"
            headers["authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        try:
            answer = await self._http.post(token_endpoint, data=form, headers=headers)
        except httpx.HTTPError as exc:
            raise IssuerUnavailable(
                f"cannot reach the identity provider's token endpoint: {exc}"
            ) from None
        try:
            body: Any = answer.json()
        except ValueError:
            body = None
        if answer.status_code != 200 or not isinstance(body, dict):
            reason: Any = None
            if isinstance(body, dict):
                reason = body.get("error_description") or body.get("error")
            raise SignInFailed(
                "the identity provider did not accept the sign-in"
                + (f": {reason}" if reason else f" (HTTP {answer.status_code})")
            )
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise SignInFailed("the identity provider's answer holds no access token")
        return token

    async def _discover(self) -> tuple[str, str]:
        fresh = time.monotonic() - self._fetched_at < _DISCOVERY_TTL_SECONDS
        if self._endpoints is not None and fresh:
            return self._endpoints
        document = await fetch_discovery(self._http, self.issuer)
        authorize, token = document.get("authorization_endpoint"), document.get("token_endpoint")
        if not isinstance(authorize, str) or not isinstance(token, str):
            raise IssuerUnavailable(
                f"the discovery document at {self.issuer} names no authorization or token endpoint"
            )
        self._endpoints, self._fetched_at = (authorize, token), time.monotonic()
        return self._endpoints
