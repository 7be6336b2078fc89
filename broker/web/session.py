"""Signing in to the web pages, and the session cookie that remembers it.

The cookie holds the caller's OpenID Connect access token and a per-session CSRF token,
signed with a key kept in ``data_dir`` (``itsdangerous``), HttpOnly and SameSite=Lax.
The token is verified again on every request, so an expired sign-in is noticed on the
next page, never later. Every POST form carries the CSRF token in a hidden field.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field, replace
from typing import Any

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from broker.errors import TokenExpired, Unauthenticated
from broker.identity.principal import Principal, Role
from broker.identity.tokens import TokenVerifier
from broker.web.errors import CsrfRejected, NotAllowed, SignInExpired, SignInRequired

__all__ = [
    "COOKIE",
    "RECENT_QUERIES",
    "SessionCodec",
    "WebSession",
    "check_csrf",
    "role_name",
    "signed_in",
]

COOKIE = "junction_session"
_SIGN_IN_COOKIE = "junction_sign_in"
RECENT_QUERIES = 5
# A session cookie older than this is ignored even if its token would still verify.
_MAX_AGE_SECONDS = 12 * 3600


@dataclass(frozen=True, slots=True)
class WebSession:
    """What the cookie remembers: the access token, the CSRF token, recent answers.

    ``answers`` maps a query id to the idempotency key and request hash its answer is
    kept under, so the result page can be shown again for a while without running the
    query (and auditing it) twice.
    """

    token: str
    csrf: str
    answers: dict[str, tuple[str, str]] = field(default_factory=dict)

    @classmethod
    def start(cls, token: str) -> WebSession:
        return cls(token=token, csrf=secrets.token_urlsafe(24))

    def with_answer(self, query_id: str, key: str, request_hash: str) -> WebSession:
        answers = dict(self.answers)
        answers[query_id] = (key, request_hash)
        while len(answers) > RECENT_QUERIES:
            answers.pop(next(iter(answers)))
        return replace(self, answers=answers)


class SessionCodec:
    """Reads and writes the signed session cookie."""

    def __init__(self, secret: bytes, *, secure: bool = False) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="junction-web-session")
        self._secure = secure

    def read(self, request: Request) -> WebSession | None:
        """The session in the request's cookie, or ``None`` if absent, forged or stale."""
        raw = request.cookies.get(COOKIE)
        if not raw:
            return None
        try:
            data: Any = self._serializer.loads(raw, max_age=_MAX_AGE_SECONDS)
        except BadSignature:
            return None
        if not isinstance(data, dict):
            return None
        token, csrf, answers = data.get("t"), data.get("c"), data.get("q", {})
        if not isinstance(token, str) or not isinstance(csrf, str) or not isinstance(answers, dict):
            return None
        kept = {
            str(query): (str(pair[0]), str(pair[1]))
            for query, pair in answers.items()
            if isinstance(pair, list) and len(pair) == 2
        }
        return WebSession(token=token, csrf=csrf, answers=kept)

    def write(self, response: Response, session: WebSession) -> None:
        value = self._serializer.dumps(
            {"t": session.token, "c": session.csrf, "q": session.answers}
        )
        response.set_cookie(
            COOKIE,
            value,
            max_age=_MAX_AGE_SECONDS,
            httponly=True,
            samesite="lax",
            secure=self._secure,
            path="/web",
        )

    @staticmethod
    def clear(response: Response) -> None:
        response.delete_cookie(COOKIE, path="/web")

    def sign_in_token(self, request: Request, response: Response) -> str:
        """The CSRF token of the sign-in form, kept in its own short-lived cookie."""
        token = self.read_sign_in_token(request) or secrets.token_urlsafe(24)
        response.set_cookie(
            _SIGN_IN_COOKIE,
            self._serializer.dumps({"s": token}),
            max_age=3600,
            httponly=True,
            samesite="lax",
            secure=self._secure,
            path="/web",
        )
        return token

    def read_sign_in_token(self, request: Request) -> str | None:
        raw = request.cookies.get(_SIGN_IN_COOKIE)
        if not raw:
            return None
        try:
            data: Any = self._serializer.loads(raw, max_age=3600)
        except BadSignature:
            return None
        token = data.get("s") if isinstance(data, dict) else None
        return token if isinstance(token, str) else None


async def signed_in(
    codec: SessionCodec, verifier: TokenVerifier, request: Request, roles: tuple[Role, ...]
) -> tuple[Principal, WebSession]:
    """The signed-in caller of ``request`` if their role is one of ``roles``.

    Raises ``SignInRequired`` with no (valid) session, ``SignInExpired`` when the token
    has expired, ``NotAllowed`` for a caller in another role.
    """
    session = codec.read(request)
    if session is None:
        raise SignInRequired("Sign in to use Junction.")
    try:
        principal = await verifier.verify(session.token)
    except TokenExpired:
        raise SignInExpired(
            "For your security, sign-ins last a limited time. Sign in again to carry on; "
            "nothing you had already done is lost."
        ) from None
    except Unauthenticated as exc:
        raise SignInRequired(f"Your sign-in was not accepted ({exc.detail}).") from None
    if principal.role not in roles:
        names = " or ".join(_ROLE_NAMES[role] for role in roles)
        raise NotAllowed(
            f"This page is for {names}s. You are signed in as "
            f"{_ROLE_NAMES[principal.role]} ({principal.name}, {principal.agency})."
        )
    return principal, session


_ROLE_NAMES = {
    Role.CASEWORKER: "caseworker",
    Role.IG_OFFICER: "information governance officer",
    Role.ADMIN: "administrator",
    Role.CONNECTOR: "connector",
}


def role_name(role: Role) -> str:
    """The role as the pages name it."""
    return _ROLE_NAMES[role]


def check_csrf(expected: WebSession | str | None, submitted: object) -> None:
    """Raise ``CsrfRejected`` unless ``submitted`` is the session's CSRF token."""
    wanted = expected.csrf if isinstance(expected, WebSession) else expected
    if not wanted or not isinstance(submitted, str) or not hmac.compare_digest(submitted, wanted):
        raise CsrfRejected(
            "The form was not sent from this session (it may have been open from before you "
            "signed in again). Go back, reload the page and send it again."
        )
