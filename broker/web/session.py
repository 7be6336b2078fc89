"""Signing in to the web pages, and the session cookie that remembers it.

The cookie holds the caller's OpenID Connect access token, a per-session CSRF token and
the session's id, encrypted and authenticated with a key derived from one kept in
``data_dir`` (``cryptography``'s Fernet), HttpOnly and SameSite=Lax: whoever holds a
copy of the cookie cannot read the token out of it to call the API. The token is
verified again on every request, so an expired sign-in is noticed on the next page,
never later; signing out records the session's id (``sign_outs``), and a copy of its
cookie is refused from then on. Every POST form carries the CSRF token in a hidden
field.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import secrets
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from fastapi import Request, Response

from broker.errors import TokenExpired, Unauthenticated
from broker.identity.principal import Principal, Role
from broker.identity.tokens import TokenVerifier
from broker.web.errors import CsrfRejected, NotAllowed, SignInExpired, SignInRequired
from broker.web.sign_outs import SignOuts

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
    query (and auditing it) twice. ``notice`` is what a form just did, as the address of
    the page to say it on and the words: that page says it once, then forgets it.
    """

    token: str
    csrf: str
    id: str
    answers: dict[str, tuple[str, str]] = field(default_factory=dict)
    notice: tuple[str, str] | None = None

    @classmethod
    def start(cls, token: str) -> WebSession:
        return cls(token=token, csrf=secrets.token_urlsafe(24), id=secrets.token_urlsafe(24))

    def with_answer(self, query_id: str, key: str, request_hash: str) -> WebSession:
        answers = dict(self.answers)
        answers[query_id] = (key, request_hash)
        while len(answers) > RECENT_QUERIES:
            answers.pop(next(iter(answers)))
        return replace(self, answers=answers)


class SessionCodec:
    """Reads and writes the encrypted session cookie; knows which sessions ended.

    ``sign_outs`` is where signed-out sessions are kept; without it (a codec that only
    writes cookies) none is ever refused for having signed out.
    """

    def __init__(
        self, secret: bytes, *, secure: bool = False, sign_outs: SignOuts | None = None
    ) -> None:
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"junction-web-session"
        ).derive(secret)
        self._fernet = Fernet(base64.urlsafe_b64encode(key))
        self._secure = secure
        self._sign_outs = sign_outs

    def _seal(self, data: dict[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(data, separators=(",", ":")).encode()).decode()

    def _open(self, raw: str | None, max_age: int) -> dict[str, Any] | None:
        if not raw:
            return None
        try:
            data = json.loads(self._fernet.decrypt(raw.encode("ascii"), ttl=max_age))
        except (InvalidToken, UnicodeEncodeError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def read(self, request: Request) -> WebSession | None:
        """The session in the request's cookie, or ``None`` if absent, forged or stale."""
        data = self._open(request.cookies.get(COOKIE), _MAX_AGE_SECONDS)
        if data is None:
            return None
        token, csrf, sid, answers = data.get("t"), data.get("c"), data.get("i"), data.get("q", {})
        if not (isinstance(token, str) and isinstance(csrf, str) and isinstance(sid, str)):
            return None
        if not isinstance(answers, dict):
            return None
        kept = {
            str(query): (str(pair[0]), str(pair[1]))
            for query, pair in answers.items()
            if isinstance(pair, list) and len(pair) == 2
        }
        said = data.get("n")
        notice = (str(said[0]), str(said[1])) if isinstance(said, list) and len(said) == 2 else None
        return WebSession(token=token, csrf=csrf, id=sid, answers=kept, notice=notice)

    def write(self, response: Response, session: WebSession) -> None:
        value = self._seal(
            {
                "t": session.token,
                "c": session.csrf,
                "i": session.id,
                "q": session.answers,
                "n": session.notice,
            }
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

    async def end(self, session: WebSession) -> None:
        """Sign ``session`` out: any copy of its cookie is refused from now on.

        Raises ``StoreUnavailable`` if that cannot be recorded.
        """
        if self._sign_outs is not None:
            until = datetime.now(UTC) + timedelta(seconds=_MAX_AGE_SECONDS)
            await asyncio.to_thread(self._sign_outs.end, session.id, until)

    async def ended(self, session: WebSession) -> bool:
        """Whether ``session`` was signed out. Raises ``StoreUnavailable``."""
        if self._sign_outs is None:
            return False
        return await asyncio.to_thread(self._sign_outs.ended, session.id)

    def sign_in_token(self, request: Request, response: Response) -> str:
        """The CSRF token of the sign-in form, kept in its own short-lived cookie."""
        token = self.read_sign_in_token(request) or secrets.token_urlsafe(24)
        response.set_cookie(
            _SIGN_IN_COOKIE,
            self._seal({"s": token}),
            max_age=3600,
            httponly=True,
            samesite="lax",
            secure=self._secure,
            path="/web",
        )
        return token

    def read_sign_in_token(self, request: Request) -> str | None:
        data = self._open(request.cookies.get(_SIGN_IN_COOKIE), 3600)
        token = None if data is None else data.get("s")
        return token if isinstance(token, str) else None


async def signed_in(
    codec: SessionCodec, verifier: TokenVerifier, request: Request, roles: tuple[Role, ...]
) -> tuple[Principal, WebSession]:
    """The signed-in caller of ``request`` if their role is one of ``roles``.

    Raises ``SignInRequired`` with no (valid) session or one that was signed out,
    ``SignInExpired`` when the token has expired, ``NotAllowed`` for a caller in another
    role, ``StoreUnavailable`` if the signed-out sessions cannot be read.
    """
    session = codec.read(request)
    if session is None:
        raise SignInRequired("Sign in to use Junction.")
    if await codec.ended(session):
        raise SignInRequired("This sign-in was ended by signing out. Sign in to use Junction.")
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
