"""The information governance officers' pages. Thin: checks and reads live in ``ig``."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from audit.entry import Decision, Kind
from broker.identity.principal import Principal, Role
from broker.web.forms import IDENTIFIER_KINDS
from broker.web.ig import AuditFilters, Check
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


async def _officer(request: Request) -> tuple[Pages, Principal, WebSession]:
    pages = pages_of(request)
    principal, session = await signed_in(pages.codec, pages.foundation.token_verifier, request, IG)
    return pages, principal, session


def _day(value: str, name: str, errors: dict[str, str], *, end: bool = False) -> datetime | None:
    if not value:
        return None
    try:
        day = datetime.fromisoformat(value).replace(tzinfo=UTC)
    except ValueError:
        errors[name] = "Enter a date as YYYY-MM-DD"
        return None
    return day.replace(hour=23, minute=59, second=59) if end and len(value) == 10 else day


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
    before = params.get("before", "")
    if before and not before.isdigit():
        errors["before"] = "The page cursor must be a number"
    if values["kind"] and values["kind"] not in {k.value for k in Kind}:
        errors["kind"] = "Choose a kind from the list"
    if values["decision"] and values["decision"] not in {d.value for d in Decision}:
        errors["decision"] = "Choose a decision from the list"
    page = None
    if not errors:
        filters = AuditFilters(
            **{name: values[name] or None for name in _FILTERS},
            since=since,
            until=until,
            before=int(before) if before else None,
        )
        page = await asyncio.to_thread(pages.ig.search, filters)
    next_params = None
    if page is not None and page.next_before is not None:
        kept = {k: v for k, v in values.items() if v}
        next_params = {**kept, "before": str(page.next_before)}
    return pages.render(
        request,
        "ig_audit.html",
        principal=principal,
        session=session,
        status=422 if errors else 200,
        values=values,
        errors=errors,
        page=page,
        next_params=next_params,
        first_page=not before,
        kinds=[k.value for k in Kind],
        decisions=[d.value for d in Decision],
    )


async def _entry_page(request: Request, index: int, check: Check | None) -> Response:
    pages, principal, session = await _officer(request)
    entry = await asyncio.to_thread(pages.ig.entry, index)
    return pages.render(
        request, "ig_entry.html", principal=principal, session=session, entry=entry, check=check
    )


@router.get("/audit/{index}")
async def audit_entry(request: Request, index: Index) -> Response:
    return await _entry_page(request, index, None)


@router.post("/audit/{index}/verify")
async def verify_entry(request: Request, index: Index) -> Response:
    pages, _, session = await _officer(request)
    form = await request.form()
    check_csrf(session, form.get("csrf"))
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
    return pages.render(
        request,
        "ig_integrity.html",
        principal=principal,
        session=session,
        status=422 if errors else 200,
        checkpoint=checkpoint,
        check=check,
        scan=scan,
        errors=errors or {},
        pasted=pasted,
    )


@router.get("/integrity")
async def integrity(request: Request) -> Response:
    return await _integrity(request)


@router.post("/integrity/consistency")
async def consistency(request: Request) -> Response:
    pages, _, session = await _officer(request)
    async with request.form(max_files=1) as form:
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
                    pasted = raw.decode("utf-8")
                except UnicodeDecodeError:
                    problem = "The file is not text; choose the checkpoint file you saved"
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
    pages, _, session = await _officer(request)
    form = await request.form()
    check_csrf(session, form.get("csrf"))
    report = await asyncio.to_thread(pages.ig.verify_all)
    return await _integrity(request, scan=report)


@router.get("/break-glass")
async def break_glass(request: Request) -> Response:
    pages, principal, session = await _officer(request)
    entries = await asyncio.to_thread(pages.ig.break_glass)
    return pages.render(
        request, "ig_break_glass.html", principal=principal, session=session, entries=entries
    )


@router.get("/anomalies")
async def anomalies(request: Request) -> Response:
    pages, principal, session = await _officer(request)
    flags = await asyncio.to_thread(pages.ig.anomalies)
    return pages.render(
        request, "ig_anomalies.html", principal=principal, session=session, flags=flags
    )


@router.get("/subject-access")
async def subject_access_form(request: Request) -> Response:
    pages, principal, session = await _officer(request)
    return pages.render(
        request,
        "ig_subject.html",
        principal=principal,
        session=session,
        kinds=IDENTIFIER_KINDS,
        errors={},
        values={},
        entries=None,
    )


@router.post("/subject-access")
async def subject_access(request: Request) -> Response:
    pages, principal, session = await _officer(request)
    form = await request.form()
    check_csrf(session, form.get("csrf"))
    kind = str(form.get("identifier_kind") or "")
    value = str(form.get("identifier_value") or "").strip()
    if kind == "nhs_number":
        value = value.replace(" ", "")
    values = {"identifier_kind": kind, "identifier_value": value}
    errors: dict[str, str] = {}
    if kind not in IDENTIFIER_KINDS:
        errors["identifier_kind"] = "Choose the kind of identifier"
    if not value:
        errors["identifier_value"] = "Enter the person's identifier"
    entries = None
    if not errors:
        try:
            entries = await asyncio.to_thread(pages.ig.subject_access, kind, value)
        except Exception as exc:  # noqa: BLE001 - a malformed identifier is shown on the form
            errors["identifier_value"] = str(getattr(exc, "detail", exc))
    return pages.render(
        request,
        "ig_subject.html",
        principal=principal,
        session=session,
        kinds=IDENTIFIER_KINDS,
        errors=errors,
        values=values,
        entries=entries,
        status=422 if errors else 200,
        generated=datetime.now(UTC),
    )


@router.get("/activity")
async def activity(request: Request) -> Response:
    pages, principal, session = await _officer(request)
    by_purpose, by_agency = await asyncio.to_thread(pages.ig.activity)
    return pages.render(
        request,
        "ig_activity.html",
        principal=principal,
        session=session,
        charts=[by_purpose, by_agency],
    )
