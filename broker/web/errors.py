"""The web pages' error hierarchy. Each renders as a page that says what to do."""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "BadForm",
    "CsrfRejected",
    "FormTooLarge",
    "NotAllowed",
    "PageNotFound",
    "SignInExpired",
    "SignInRequired",
    "WebError",
    "sentence",
]


def sentence(text: str) -> str:
    """``text`` as a page shows it: from a capital letter (the broker's details start in
    lower case, to follow a colon)."""
    return text[:1].upper() + text[1:]


class WebError(Exception):
    """Base of every error a web page shows instead of its content."""

    code: ClassVar[str] = "web-error"
    title: ClassVar[str] = "The page could not be shown"
    status: ClassVar[int] = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class SignInRequired(WebError):
    code = "sign-in-required"
    title = "Please sign in"
    status = 401


class SignInExpired(SignInRequired):
    code = "sign-in-expired"
    title = "Your sign-in has expired"


class PageNotFound(WebError):
    code = "page-not-found"
    title = "Page not found"
    status = 404


class NotAllowed(WebError):
    code = "not-allowed"
    title = "You do not have access to this page"
    status = 403


class CsrfRejected(WebError):
    code = "form-expired"
    title = "The form could not be accepted"
    status = 403


class FormTooLarge(WebError):
    code = "form-too-large"
    title = "The form is too large to send"
    status = 413


class BadForm(WebError):
    """A form with errors; ``fields`` maps each field name to what is wrong with it."""

    code = "bad-form"
    title = "There is a problem with the form"
    status = 422

    def __init__(self, detail: str, fields: dict[str, str]) -> None:
        super().__init__(detail)
        self.fields = fields
