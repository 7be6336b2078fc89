"""The information governance officers' pages. Thin: checks and reads live in ``ig``."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from pydantic import ValidationError
from pydantic_core import ErrorDetails
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException

from audit.entry import Decision, Kind
from broker.errors import Conflict, InvalidChange, InvalidRequest
from broker.identity.principal import Principal, Role
from broker.oversight.schemas import AuditSearch, ReviewIn
from broker.web.errors import BadForm, sentence
from broker.web.forms import IDENTIFIER_KINDS, subject_access_form, typed_text
from broker.web.ig import PAGE_SIZE, Check
from broker.web.limits import read_form
from broker.web.pages import Pages, WebRoute, pages_of
from broker.web.session import WebSession, check_csrf, signed_in

__all__ = ["router"]

router = APIRouter(prefix="/web/ig", route_class=WebRoute, include_in_schema=False)
Index = Annotated[int, Path(ge=0, le=2**62)]
IG = (Role.IG_OFFICER,)
_FILTERS = (
    "actor",
    "actor_agency",
    "counterparty_agency",
    "purpose",
    "kind",
    "decision",
    "query_id",
)
_MAX_CHECKPOINT_BYTES = 8192
_REVIEW_NOTE_LENGTH = 2000  # as ``ReviewIn.note`` allows
_CURSOR = "The page cursor is not one an Older entries link gives: start the search again"
_QUEUES = {"pending": "Waiting for review", "reviewed": "Reviewed", "all": "All"}


async def _officer(request: Request) -> tuple[Pages, Principal, WebSession]:
    pages = pages_of(request)
    principal, session = await signed_in(pages.codec, pages.foundation.token_verifier, request, IG)
    return pages, principal, session


async def _officer_post(request: Request) -> tuple[Pages, Principal, WebSession, FormData]:
    """An IG officer's form submission: who sent it, and the form, its CSRF token checked."""
    pages, principal, session = await _officer(request)
    form = await read_form(request)
    check_csrf(session, form.get("csrf"))
    return pages, principal, session, form


def _day(value: str, name: str, errors: dict[str, str], *, end: bool = False) -> datetime | None:
    if not value:
        return None
    try:
        day = datetime.fromisoformat(value).replace(tzinfo=UTC)
    except ValueError:
        errors[name] = "Enter a date as YYYY-MM-DD"
        return None
    return day.replace(hour=23, minute=59, second=59) if end and len(value) == 10 else day


def _filter_problem(name: str, error: ErrorDetails) -> str:
    """What the search form says beside filter ``name`` for a value the search refused."""
    if name == "cursor":
        return _CURSOR
    if error["type"] == "string_too_long":
        # A typed filter: the log records no longer name, so none could match.
        return f"Enter at most {error.get('ctx', {}).get('max_length')} characters"
    if name in ("actor_agency", "counterparty_agency"):
        return "Enter the agency's id, such as council or police, not its name"
    return "Choose a value from the list"


@router.get("")
async def dashboard(request: Request) -> Response:
    pages, principal, session = await _officer(request)
    checkpoint = await asyncio.to_thread(pages.ig.checkpoint)
    return pages.render(
        request, "ig_home.html", principal=principal, session=session, checkpoint=checkpoint
    )


@router.get("/audit")
async def audit_search(request: Request) -> Response:
    pages, principal, session = await _officer(request)
    params = request.query_params
    values: dict[str, Any] = {name: params.get(name, "").strip() for name in _FILTERS}
    values.update(since=params.get("since", ""), until=params.get("until", ""))
    errors: dict[str, str] = {}
    since = _day(values["since"], "since", errors)
    until = _day(values["until"], "until", errors, end=True)
    if since and until and since >= until:
        errors["until"] = "The end date must be on or after the start date"
    cursor = params.get("cursor", "")
    # isdigit alone takes digits int() does not read, such as a superscript two.
    if cursor and not (cursor.isascii() and cursor.isdigit()):
        errors["cursor"] = _CURSOR
    page = None
    if not errors:
        try:
            body = AuditSearch.model_validate(
                {
                    **{name: values[name] or None for name in _FILTERS},
                    "since": since,
                    "until": until,
                    "cursor": int(cursor) if cursor else None,
                    "limit": PAGE_SIZE,
                }
            )
        except ValidationError as exc:
            for error in exc.errors():
                name = str(error["loc"][0]) if error["loc"] else "kind"
                errors.setdefault(name, _filter_problem(name, error))
        else:
            try:
                page = await asyncio.to_thread(pages.ig.search, principal, body)
            except InvalidRequest as exc:
                errors["until"] = sentence(exc.detail)
    next_params = None
    if page is not None and page.next_cursor is not None:
        kept = {k: v for k, v in values.items() if v}
        next_params = {**kept, "cursor": str(page.next_cursor)}
    return pages.render_form(
        request,
        "ig_audit.html",
        principal=principal,
        session=session,
        values=values,
        errors=errors,
        page=page,
        next_params=next_params,
        first_page=not cursor,
        kinds=[k.value for k in Kind],
        decisions=[d.value for d in Decision],
    )


async def _entry_page(request: Request, index: int, check: Check | None) -> Response:
    pages, principal, session = await _officer(request)
    found = await asyncio.to_thread(pages.ig.entry, principal, index)
    return pages.render(
        request,
        "ig_entry.html",
        principal=principal,
        session=session,
        entry=found.entry,
        proof=found.proof,
        check=check,
    )


@router.get("/audit/{index}")
async def audit_entry(request: Request, index: Index) -> Response:
    return await _entry_page(request, index, None)


@router.post("/audit/{index}/verify")
async def verify_entry(request: Request, index: Index) -> Response:
    pages, _, _, _ = await _officer_post(request)
    check = await pages.ig.verify_entry(index)
    return await _entry_page(request, index, check)


async def _integrity(
    request: Request,
    check: Check | None = None,
    errors: dict[str, str] | None = None,
    scan: Any = None,
    pasted: str = "",
) -> Response:
    pages, principal, session = await _officer(request)
    checkpoint = await asyncio.to_thread(pages.ig.checkpoint)
    return pages.render_form(
        request,
        "ig_integrity.html",
        principal=principal,
        session=session,
        checkpoint=checkpoint,
        check=check,
        scan=scan,
        errors=errors,
        pasted=pasted,
    )


@router.get("/integrity")
async def integrity(request: Request) -> Response:
    return await _integrity(request)


@router.post("/integrity/consistency")
async def consistency(request: Request) -> Response:
    pages, _, session = await _officer(request)
    try:
        form = await request.form(max_files=1)
    except HTTPException:
        # Starlette refuses a form with two files (or a part over a megabyte) before the
        # route sees it.
        return await _integrity(
            request, errors={"checkpoint_file": "Choose one checkpoint file, or paste one"}
        )
    try:
        check_csrf(session, form.get("csrf"))
        pasted = str(form.get("checkpoint") or "")
        upload = form.get("checkpoint_file")
        problem = None
        if isinstance(upload, UploadFile) and upload.filename:
            raw = await upload.read(_MAX_CHECKPOINT_BYTES + 1)
            if len(raw) > _MAX_CHECKPOINT_BYTES:
                problem = "A checkpoint is a few hundred bytes; this file is too large"
            else:
                try:
                    # Some editors (Notepad among them) save a byte order mark first.
                    pasted = raw.decode("utf-8-sig")
                except UnicodeDecodeError:
                    problem = "The file is not text; choose the checkpoint file you saved"
    finally:
        await form.close()
    if problem:
        return await _integrity(request, errors={"checkpoint_file": problem})
    if not pasted.strip():
        return await _integrity(
            request, errors={"checkpoint": "Paste a checkpoint, or choose a file that holds one"}
        )
    pasted = pasted[:_MAX_CHECKPOINT_BYTES]
    check = await asyncio.to_thread(pages.ig.consistency, pasted)
    return await _integrity(request, check=check, pasted=pasted)


@router.post("/integrity/verify-all")
async def verify_all(request: Request) -> Response:
    pages, _, _, _ = await _officer_post(request)
    report = await asyncio.to_thread(pages.ig.verify_all)
    return await _integrity(request, scan=report)


@router.get("/break-glass")
async def break_glass(request: Request) -> Response:
    return await _break_glass(request)


async def _break_glass(
    request: Request,
    errors: dict[str, str] | None = None,
    notice: str = "",
    values: dict[str, Any] | None = None,
) -> Response:
    """The queue; ``values`` are a review sent back with ``errors``, shown again on the
    form of the entry they were for."""
    pages, principal, session = await _officer(request)
    state = request.query_params.get("state", "pending")
    if state not in _QUEUES:
        state = "pending"
    queue = await asyncio.to_thread(pages.ig.break_glass, state)
    return pages.render_form(
        request,
        "ig_break_glass.html",
        principal=principal,
        session=session,
        queue=queue,
        state=state,
        queues=_QUEUES,
        errors=errors,
        notice=notice,
        values=values or {},
        note_length=_REVIEW_NOTE_LENGTH,
    )


@router.post("/break-glass/{index}/review")
async def review_break_glass(request: Request, index: Index) -> Response:
    pages, principal, _, form = await _officer_post(request)
    note = str(form.get("note") or "")
    # A paste can carry control characters, which the log would keep for good.
    kept = typed_text(note, lines=True)
    body: ReviewIn | None = None
    problems: dict[str, str] = {}
    try:
        body = ReviewIn.model_validate({"outcome": form.get("outcome") or "", "note": kept})
    except ValidationError as exc:
        problems = {str(e["loc"][0]): e["type"] for e in exc.errors() if e["loc"]}
    if kept != note:
        problems["note"] = "control_characters"
    if body is None or problems:
        errors = {}
        if "outcome" in problems:
            errors[f"outcome-{index}"] = "Choose whether the use was justified"
        if problems.get("note") == "control_characters":
            errors[f"note-{index}"] = (
                "What you found held invisible characters, now taken out: check it and send "
                "the form again"
            )
        elif problems.get("note") == "string_too_long":
            errors[f"note-{index}"] = (
                f"What you found can be up to {_REVIEW_NOTE_LENGTH:,} characters: shorten it"
            )
        elif "note" in problems:
            errors[f"note-{index}"] = "Write what you found"
        values = {"index": index, "outcome": form.get("outcome"), "note": kept}
        return await _break_glass(request, errors, values=values)
    try:
        done = await asyncio.to_thread(pages.ig.review, principal, index, body)
    except Conflict as exc:
        # Sent twice, or another officer recorded a finding first: the queue as it is now.
        return await _break_glass(request, notice=await _already_reviewed(pages, index, exc))
    return await _break_glass(
        request,
        notice=f"Review of entry {index} recorded ({done.outcome.replace('_', ' ')}) as audit "
        f"entry {done.review_entry}.",
    )


async def _already_reviewed(pages: Pages, index: int, exc: Conflict) -> str:
    """What the queue says when a finding on entry ``index`` came after another one."""
    earlier = await asyncio.to_thread(pages.ig.review_of, index)
    if earlier is None:
        said = sentence(exc.detail)
    else:
        said = (
            f"Entry {index} was already reviewed ({earlier.outcome.replace('_', ' ')}) by "
            f"{earlier.reviewed_by} on {earlier.reviewed_at.strftime('%d %b %Y at %H:%M UTC')}"
            f" (audit entry {earlier.review_entry})"
        )
    return f"{said}. Your finding was not recorded."


@router.get("/anomalies")
async def anomalies(request: Request) -> Response:
    pages, principal, session = await _officer(request)
    report = await asyncio.to_thread(pages.ig.anomalies)
    return pages.render(
        request, "ig_anomalies.html", principal=principal, session=session, report=report
    )


@router.get("/subject-access")
async def subject_access_page(request: Request) -> Response:
    pages, principal, session = await _officer(request)
    return pages.render(
        request,
        "ig_subject.html",
        principal=principal,
        session=session,
        kinds=IDENTIFIER_KINDS,
        errors={},
        values={},
        report=None,
    )


@router.post("/subject-access")
async def subject_access(request: Request) -> Response:
    pages, principal, session, form = await _officer_post(request)
    kind = str(form.get("identifier_kind") or "")
    value = str(form.get("identifier_value") or "").strip()
    values = {"identifier_kind": kind, "identifier_value": value}
    errors: dict[str, str] = {}
    report = None
    try:
        body = subject_access_form(form)
    except BadForm as exc:
        errors = exc.fields
    else:
        try:
            report = await asyncio.to_thread(pages.ig.subject_access, principal, body)
        except InvalidChange as exc:
            errors["identifier_value"] = sentence(exc.detail)
    return pages.render_form(
        request,
        "ig_subject.html",
        principal=principal,
        session=session,
        kinds=IDENTIFIER_KINDS,
        errors=errors,
        values=values,
        report=report,
    )


@router.get("/activity")
async def activity(request: Request) -> Response:
    pages, principal, session = await _officer(request)
    counted = await asyncio.to_thread(pages.ig.activity)
    return pages.render(
        request,
        "ig_activity.html",
        principal=principal,
        session=session,
        charts=counted.charts,
        counted=counted,
    )
