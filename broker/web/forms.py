"""Turning the pages' forms into the API's request models, with errors per field.

A form is validated by the same pydantic models the JSON API uses; a validation error
is mapped back to the input it concerns so the page can show it beside that input.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from broker.consent.schemas import ConsentIn, ConsentSearch, ConsentTransition
from broker.errors import Conflict, InvalidChange
from broker.oversight.schemas import SubjectAccessIn
from broker.queries.schemas import FamilyQueryRequest
from broker.web.catalogue import Catalogue
from broker.web.errors import BadForm

__all__ = [
    "IDENTIFIER_KINDS",
    "NOTE_LENGTH",
    "consent_form",
    "consent_refusal",
    "consent_search_form",
    "query_form",
    "shown_again",
    "subject_access_form",
    "typed_text",
    "withdraw_form",
    "withdrawal_refusal",
]

NOTE_LENGTH = 500
"""The most characters a consent's note may hold (as the register's ``Text``)."""

IDENTIFIER_KINDS = {
    "nhs_number": "NHS number",
    "upn": "Unique pupil number",
    "ni_number": "National Insurance number",
    "local_ref": "Agency reference (agency:reference, as a result page shows it)",
}

_QUERY_FIELDS = {
    ("subject", "given_name"): "given_name",
    ("subject", "family_name"): "family_name",
    ("subject", "date_of_birth"): "date_of_birth",
    ("subject", "sex"): "sex",
    ("subject", "postcode"): "postcode",
    ("subject", "identifiers", "nhs_number"): "nhs_number",
    ("subject", "identifiers", "upn"): "upn",
    ("subject", "identifiers", "ni_number"): "ni_number",
    ("break_glass", "reason_code"): "break_glass_reason",
    ("break_glass", "text"): "break_glass_text",
    ("conditions",): "conditions",
}


def _text(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _optional(form: Mapping[str, Any], name: str) -> str | None:
    return _text(form, name) or None


def _ticked(form: Mapping[str, Any], name: str) -> list[str]:
    """The values of the boxes ticked among those called ``name``."""
    value = form.get(name)
    values = [value] if isinstance(value, str) else value or []
    return [str(v) for v in values if v]


# The identifier forms ask for one identifier: its kind and its value.
_IDENTIFIER_FIELDS = {
    ("identifiers",): "identifier_value",
    ("identifiers", "0"): "identifier_value",
    ("identifiers", "0", "kind"): "identifier_kind",
}

# How an identifier's kind reads at the start of a sentence on a page.
_KIND_WORDS = {
    "nhs_number": "NHS number",
    "upn": "Unique pupil number",
    "ni_number": "National Insurance number",
}


def _errors(
    exc: ValidationError,
    names: Mapping[tuple[str, ...], str],
    friendly: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The message beside each input ``exc`` concerns: an answer too long says how long
    it may be; any other problem reads as ``friendly`` words it, or as pydantic does."""
    fields: dict[str, str] = {}
    for error in exc.errors():
        loc = tuple(str(part) for part in error["loc"])
        name = names.get(loc) or names.get(loc[:2]) or names.get(loc[:1])
        name = name or (loc[-1] if loc else "form")
        if error["type"] == "string_too_long":
            words = _TYPED.get(name) or _CONSENT_WORDS.get(name)
            most = f"{error.get('ctx', {}).get('max_length', 0):,}"
            fields.setdefault(
                name,
                f"The {words} can be up to {most} characters"
                if words
                else f"Shorten this to at most {most} characters",
            )
            continue
        if friendly and name in friendly:
            fields.setdefault(name, friendly[name])
            continue
        message = str(error["msg"]).removeprefix("Value error, ")
        kind, _, rest = message.partition(" ")
        if kind in _KIND_WORDS:
            message = f"{_KIND_WORDS[kind]} {rest}"
        fields.setdefault(name, message[0].upper() + message[1:] if message else "Not valid")
    return fields


# The query form's typed answers, as a sentence names them. A paste from another system
# can carry control characters (NUL and the like), which agencies refuse: the form
# refuses them first, so an agency is never reported unavailable for what was typed.
_TYPED = {
    "given_name": "first name",
    "family_name": "last name",
    "date_of_birth": "date of birth",
    "postcode": "postcode",
    "nhs_number": "NHS number",
    "upn": "unique pupil number",
    "ni_number": "National Insurance number",
    "case_reference": "case reference",
    "override_reason": "reason for sharing despite a refusal",
    "justification": "reason you need this information",
    "break_glass_text": "description of the emergency",
}
_TEXT_AREAS = frozenset({"justification", "override_reason", "break_glass_text"})


def _unwanted(name: str, char: str) -> bool:
    """Whether ``char`` may not be typed in the input ``name``: a control character,
    other than a tab or line break in a text area."""
    return _control(char, lines=name in _TEXT_AREAS)


def _control(char: str, *, lines: bool) -> bool:
    return unicodedata.category(char) == "Cc" and not (lines and char in "\t\r\n")


def typed_text(value: str, *, lines: bool = False) -> str:
    """``value`` without the control characters a paste can carry; with ``lines`` (a
    text area) its tabs and line breaks are kept."""
    return "".join(c for c in value if not _control(c, lines=lines))


def _invisible_characters(form: Mapping[str, Any]) -> dict[str, str]:
    return {
        name: f"The {words} held invisible characters, now taken out: check it and send "
        "the form again"
        for name, words in _TYPED.items()
        if isinstance(value := form.get(name), str)
        and any(_unwanted(name, c) for c in value.strip())
    }


def shown_again(form: Mapping[str, Any]) -> dict[str, Any]:
    """A sent form's values as the page shows them back: without control characters."""
    return {
        name: "".join(c for c in value if not _unwanted(name, c))
        if isinstance(value, str)
        else value
        for name, value in form.items()
    }


def query_form(form: Mapping[str, Any], catalogue: Catalogue) -> FamilyQueryRequest:
    """The family query a submitted form asks, its choices those ``catalogue`` offers.

    Raises ``BadForm`` naming each bad field.
    """
    fields: dict[str, str] = {}
    identifiers = {k: _text(form, k) for k in ("nhs_number", "upn", "ni_number") if _text(form, k)}
    born = _text(form, "date_of_birth")
    if born:
        try:
            dt.date.fromisoformat(born)
        except ValueError:
            fields["date_of_birth"] = "Enter the date of birth as YYYY-MM-DD, e.g. 2014-05-02"
    if not _text(form, "purpose"):
        fields["purpose"] = "Choose the purpose of this query"
    elif catalogue.needs_case_reference(_text(form, "purpose")) and not _text(
        form, "case_reference"
    ):
        # Policy would refuse the query, after it was audited, for want of one.
        fields["case_reference"] = "Enter the case reference: this purpose needs one"
    legal_basis = _text(form, "legal_basis")
    gateway = _optional(form, "gateway")
    if legal_basis == "public_task" and gateway is None:
        fields["gateway"] = "A public task needs its statutory gateway: choose one"
    break_glass = None
    if _text(form, "break_glass") == "yes":
        break_glass = {
            "reason_code": _text(form, "break_glass_reason"),
            "text": _text(form, "break_glass_text"),
        }
        if not break_glass["reason_code"]:
            fields["break_glass_reason"] = "Choose why emergency access is needed"
    public_task = legal_basis == "public_task"
    conditions = _ticked(form, "conditions")
    not_sought = _optional(form, "consent_not_sought_reason")
    fields.update(_special_category(catalogue, conditions, not_sought, public_task=public_task))
    body: dict[str, Any] = {
        "subject": {
            "given_name": _text(form, "given_name"),
            "family_name": _text(form, "family_name"),
            "date_of_birth": born or None,
            "sex": _optional(form, "sex"),
            "postcode": _optional(form, "postcode"),
            "identifiers": identifiers,
        },
        "purpose": _text(form, "purpose") or "unknown",
        "legal_basis": legal_basis,
        "gateway": gateway if public_task else None,
        "case_reference": _optional(form, "case_reference"),
        "justification": _text(form, "justification"),
        "conditions": conditions,
        # Policy reads these two only on a public task, as it does the gateway.
        "consent_not_sought_reason": not_sought if public_task else None,
        "override_reason": _optional(form, "override_reason") if public_task else None,
        "break_glass": break_glass,
    }
    try:
        request = FamilyQueryRequest.model_validate(body)
    except ValidationError as exc:
        for name, message in _errors(exc, _QUERY_FIELDS, _FRIENDLY).items():
            fields.setdefault(name, message)
        request = None
    invisible = _invisible_characters(form)
    if fields or invisible or request is None:
        # Invisible characters explain any other problem with the same answer.
        fields = {**fields, **invisible}
        # The summary lists problems in the order the form asks its questions.
        ordered = sorted(fields.items(), key=lambda item: _ORDER.get(item[0], len(_ORDER)))
        raise BadForm("Check the answers marked below.", dict(ordered))
    return request


def _special_category(
    catalogue: Catalogue, conditions: list[str], not_sought: str | None, *, public_task: bool
) -> dict[str, str]:
    """What is wrong with the conditions and the reason consent was not sought."""
    fields: dict[str, str] = {}
    if not set(conditions) <= {c.code for c in catalogue.conditions}:
        fields["conditions"] = "Choose conditions from the list"
    if not_sought is not None and not_sought not in {r.code for r in catalogue.not_sought_reasons}:
        fields["consent_not_sought_reason"] = "Choose a reason from the list"
    elif not_sought is None and public_task and catalogue.reasons_needed & set(conditions):
        # Policy meets a safeguarding condition on a public task only with the reason:
        # without it the condition would be named and every such item still withheld.
        fields["consent_not_sought_reason"] = (
            "Choose why consent was not sought: a safeguarding condition needs it on a public task"
        )
    return fields


_ORDER = {
    name: i
    for i, name in enumerate(
        (
            "given_name",
            "family_name",
            "date_of_birth",
            "sex",
            "postcode",
            "nhs_number",
            "upn",
            "ni_number",
            "purpose",
            "legal_basis",
            "gateway",
            "conditions",
            "consent_not_sought_reason",
            "override_reason",
            "case_reference",
            "justification",
            "break_glass_reason",
            "break_glass_text",
        )
    )
}


_FRIENDLY = {
    "given_name": "Enter the person's first name",
    "family_name": "Enter the person's last name",
    "legal_basis": "Choose the legal basis: consent, or a public task",
    "justification": "Say why you need this information (at least 10 characters)",
    "break_glass_text": "Describe the emergency (at least 10 characters)",
    "conditions": "Choose conditions from the list",
    "identifiers": "Name at least one identifier",
    "channel": "Choose how the person gave their answer",
    "scope": "Choose which agencies the consent covers",
    "expires_on": "Enter a real expiry date, such as 2027-11-21, or leave it empty",
}


# How the consent form's typed answers read in a sentence (the query form's are _TYPED).
_CONSENT_WORDS = {
    "label": "label",
    "evidence_reference": "evidence reference",
    "note": "note",
}


def _identifiers(form: Mapping[str, Any]) -> list[dict[str, str]]:
    kind, value = _text(form, "identifier_kind"), _text(form, "identifier_value")
    return [{"kind": kind, "value": value}] if value else []


def consent_form(form: Mapping[str, Any]) -> ConsentIn:
    """The consent statement a submitted form records. Raises ``BadForm``."""
    scope: list[str] | str = [str(v) for v in form.get("scope_agencies", []) if v]
    if _text(form, "scope") == "all":
        scope = "all"
    expires = _text(form, "expires_on")
    body: dict[str, Any] = {
        "identifiers": _identifiers(form),
        "label": _optional(form, "label"),
        "purpose": _text(form, "purpose"),
        "scope": scope,
        "state": _text(form, "state") or "given",
        "given_by": _text(form, "given_by") or "person",
        "channel": _text(form, "channel"),
        "evidence_reference": _optional(form, "evidence_reference"),
        # A consent given until a day holds to the end of it: one picked as expiring
        # today is in force until midnight, not already past.
        "expires_at": f"{expires}T23:59:59Z" if expires else None,
        "note": _optional(form, "note"),
        "restricted_fields": [str(v) for v in form.get("restricted_fields", []) if v],
    }
    names: dict[tuple[str, ...], str] = {**_IDENTIFIER_FIELDS, ("expires_at",): "expires_on"}
    try:
        return ConsentIn.model_validate(body)
    except ValidationError as exc:
        raise BadForm("Check the answers marked below.", _errors(exc, names, _FRIENDLY)) from None


# What the form says, beside which input, when the register refuses a statement: the
# register names the member of the statement (``location``) in its own terms.
_CONSENT_REFUSALS = {
    "expires_at": (
        "expires_on",
        "The expiry date must be today or later; leave it empty if the consent does not expire",
    ),
    "purpose": ("purpose", "Choose a purpose from the list"),
    "scope": (
        "scope",
        "Choose agencies from the list: one you ticked is not taking part in Junction",
    ),
    "restricted_fields": (
        "restricted_fields",
        "Choose items from the list: one you ticked is not an item any agency shares",
    ),
}


def consent_refusal(exc: InvalidChange) -> dict[str, str]:
    """The consent form's errors for a statement the register refused with ``exc``."""
    location = exc.extensions.get("location")
    if location in _CONSENT_REFUSALS:
        name, message = _CONSENT_REFUSALS[location]
        return {name: message}
    # Otherwise it is the identifier: one the register cannot file under.
    return {"identifier_value": exc.detail[0].upper() + exc.detail[1:]}


def consent_search_form(form: Mapping[str, Any]) -> ConsentSearch:
    """Whose consents to show. Raises ``BadForm``."""
    identifiers = _identifiers(form)
    if not identifiers:
        raise BadForm(
            "Enter an identifier to look for.",
            {"identifier_value": "Enter the person's identifier"},
        )
    try:
        return ConsentSearch.model_validate({"identifiers": identifiers})
    except ValidationError as exc:
        raise BadForm("Check the identifier.", _errors(exc, _IDENTIFIER_FIELDS)) from None


def subject_access_form(form: Mapping[str, Any]) -> SubjectAccessIn:
    """Whose accesses an IG officer asks to see. Raises ``BadForm``."""
    identifiers = _identifiers(form)
    if not identifiers:
        raise BadForm(
            "Enter an identifier to report on.",
            {"identifier_value": "Enter the person's identifier and choose its kind"},
        )
    try:
        return SubjectAccessIn.model_validate({"identifiers": identifiers})
    except ValidationError as exc:
        raise BadForm("Check the identifier.", _errors(exc, _IDENTIFIER_FIELDS)) from None


def withdraw_form(form: Mapping[str, Any]) -> ConsentTransition:
    """A withdrawal with its note. Raises ``BadForm``."""
    try:
        return ConsentTransition.model_validate(
            {"state": "withdrawn", "note": _optional(form, "note")}
        )
    except ValidationError:
        # The note is optional: only its length can be wrong.
        raise BadForm(
            "Check the note.", {"note": f"The note can be up to {NOTE_LENGTH} characters"}
        ) from None


def withdrawal_refusal(exc: InvalidChange | Conflict) -> str:
    """What the consent page says when the register will not record a withdrawal."""
    if isinstance(exc, Conflict):
        return "Someone changed this consent at the same moment: read it again below"
    state = str(exc.extensions.get("current_state", "")).replace("_", " ")
    if state == "withdrawn":
        return "This consent is already withdrawn"
    if state:
        return f"This consent is {state} now, so there is nothing to withdraw"
    return exc.detail[0].upper() + exc.detail[1:]
