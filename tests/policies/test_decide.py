"""The typed decision, and deny with "policy error" whenever deciding fails."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from policies._opa import OpaServerEngine
from policies._regopy import RegopyEngine
from policies._regorus import RegorusEngine
from policies.bundle import Bundle, load_bundle
from policies.decide import _Exchange, decide_family
from policies.errors import EngineError, EngineUnavailable
from policies.model import ExchangeDecision, FamilyDecision
from policies.opa_standin import OpaStandin
from tests.policies.factories import copy_bundle, family_query


def _all_denied_for_policy_error(decision: FamilyDecision) -> None:
    assert not decision.allow
    assert [r.code for r in decision.submit.reasons] == ["policy_error"]
    assert decision.submit.reasons[0].text.startswith("policy error")
    for exchange in decision.exchanges:
        assert not exchange.allow
        assert exchange.permitted_fields == []
        assert {w.code for w in exchange.withheld} == {"policy_error"}


def test_decision_is_typed_and_cites_bundle_and_engine(embedded: RegorusEngine) -> None:
    decision = decide_family(embedded, family_query())
    assert decision.allow
    assert decision.engine == "regorus"
    assert decision.bundle_digest == embedded.digest
    child = decision.exchange("school-1", "child-1")
    assert child.permitted_fields == ["education.attendance_rate", "education.sen_status"]
    assert child.agreement is not None
    assert (child.agreement.id, child.agreement.version) == ("dsa-school-csc", 2)
    adult = decision.exchange("school-1", "adult-1")
    assert [(w.field, w.code) for w in adult.withheld] == [
        ("education.sen_status", "restricted_by_person")
    ]
    with pytest.raises(KeyError):
        decision.exchange("school-1", "nobody")


def test_trailing_z_times_work_on_regopy_too(embedded: RegorusEngine, bundle: Bundle) -> None:
    # rego-cpp rejects "...Z" in time.parse_rfc3339_ns; the typed input writes "+00:00".
    query = family_query()
    assert query.to_document()["request"]["time"] == "2026-06-01T10:00:00+00:00"
    regopy = decide_family(RegopyEngine(bundle), query)
    regorus = decide_family(embedded, query)
    assert regopy.allow
    assert regopy.exchanges == regorus.exchanges


def test_runtime_error_in_the_policy_is_a_deny(tmp_path: Path) -> None:
    root = copy_bundle(tmp_path)
    family = root / "rego" / "family.rego"
    family.write_text(family.read_text().replace("time.parse_rfc3339_ns(req.time)", "1 / 0"))
    decision = decide_family(RegorusEngine(load_bundle([root])), family_query())
    _all_denied_for_policy_error(decision)


class _Broken:
    """An engine seam that fails the way a real one can."""

    def __init__(self, outcome: Any) -> None:
        self._outcome = outcome

    @property
    def name(self) -> str:
        return "broken"

    @property
    def digest(self) -> str:
        return "sha256:broken"

    def evaluate(self, entrypoint: str, input_document: Any) -> Any:
        if isinstance(self._outcome, Exception):
            raise self._outcome
        return self._outcome

    def close(self) -> None:
        """Nothing held."""


_SUBMIT = {"allow": True, "reasons": [], "obligations": []}
_EXCHANGE = {
    "allow": True,
    "tier": "full",
    "permitted_fields": ["education.attendance_rate"],
    "withheld": [],
    "obligations": [],
    "reasons": [],
    "agreement": None,
    "retention_days": 1,
}


def _answer(templates: list[Any], persons: list[Any]) -> dict[str, Any]:
    agency = {"agency_id": "school-1", "templates": templates, "persons": persons}
    return {"submit": _SUBMIT, "agencies": [agency]}


_PERMIT = {"outcome": "permit", "restricted": [], "exchange": _EXCHANGE}
_BOTH = [["child-1", "permit", []], ["adult-1", "permit", []]]


@pytest.mark.parametrize(
    "outcome",
    [
        EngineError("evaluating failed"),
        RuntimeError("a bug in an engine"),
        None,
        {"submit": {"allow": True}},
        {"submit": _SUBMIT, "agencies": []},
        _answer([], _BOTH),
        _answer([_PERMIT, _PERMIT], _BOTH),
        _answer([_PERMIT], [["child-1", "permit", []], ["child-2", "permit", []]]),
        _answer([_PERMIT], list(reversed(_BOTH))),
        _answer([_PERMIT], [*_BOTH, ["adult-1", "permit", []]]),
        _answer([{**_PERMIT, "exchange": {**_EXCHANGE, "tier": "most"}}], _BOTH),
        _answer([_PERMIT], [["child-1", "permit"], ["adult-1", "permit"]]),
    ],
    ids=[
        "engine-error",
        "unexpected-exception",
        "undefined",
        "wrong-shape",
        "missing-pairs",
        "unknown-template",
        "template-given-twice",
        "other-pairs",
        "pairs-out-of-order",
        "extra-pair",
        "malformed-exchange",
        "person-without-restrictions",
    ],
)
def test_every_failure_is_a_deny_never_an_exception(outcome: Any) -> None:
    decision = decide_family(_Broken(outcome), family_query())
    _all_denied_for_policy_error(decision)
    assert len(decision.exchanges) == 2


def test_a_well_formed_answer_is_expanded_for_every_person() -> None:
    decision = decide_family(_Broken(_answer([_PERMIT], _BOTH)), family_query())
    assert decision.allow
    assert [(e.agency_id, e.person_ref) for e in decision.exchanges] == [
        ("school-1", "child-1"),
        ("school-1", "adult-1"),
    ]
    for exchange in decision.exchanges:
        assert exchange.permitted_fields == ["education.attendance_rate"]


def test_expanded_exchanges_are_ordinary_decisions(embedded: RegorusEngine) -> None:
    # The expansion builds each person's copy without validating it again; the copies
    # must behave exactly like validated models.
    decision = decide_family(embedded, family_query())
    for exchange in decision.exchanges:
        assert ExchangeDecision.model_validate(exchange.model_dump()) == exchange
        assert ExchangeDecision.model_validate_json(exchange.model_dump_json()) == exchange
        assert exchange.model_fields_set == set(ExchangeDecision.model_fields)
        with pytest.raises(ValidationError):
            exchange.allow = False  # type: ignore[misc]
    child, adult = decision.exchanges
    assert child.person_ref == "child-1"
    assert adult.person_ref == "adult-1"
    assert decision == FamilyDecision.model_validate(decision.model_dump())


def test_an_answer_exchange_is_a_decision_without_its_pair() -> None:
    # The policy's exchange and the broker's ExchangeDecision must not drift apart.
    assert set(ExchangeDecision.model_fields) - set(_Exchange.model_fields) == {
        "agency_id",
        "person_ref",
    }
    assert set(_Exchange.model_fields) <= set(ExchangeDecision.model_fields)


def test_opa_server_that_went_away_is_a_deny(bundle: Bundle) -> None:
    with OpaStandin() as server:
        engine = OpaServerEngine(bundle, server.url, timeout=2)
        assert decide_family(engine, family_query()).allow
    _all_denied_for_policy_error(decide_family(engine, family_query()))
    engine.close()


def test_unreachable_opa_server_is_named(bundle: Bundle) -> None:
    with OpaStandin() as server:
        url = server.url
    with pytest.raises(EngineUnavailable) as caught:
        OpaServerEngine(bundle, url, timeout=2)
    assert caught.value.detail == (
        f"the OPA server at {url} cannot be reached (is it running?), so it did not take the bundle"
    )
    with pytest.raises(EngineError, match="must look like"):
        OpaServerEngine(bundle, "localhost:8181")


def test_embedded_engine_decides_on_any_thread(embedded: RegorusEngine) -> None:
    # The broker decides from a pool of worker threads, not the thread that loaded policy.
    query = family_query()
    here = decide_family(embedded, query)
    with ThreadPoolExecutor(max_workers=3) as pool:
        there = list(pool.map(lambda _: decide_family(embedded, query), range(6)))
    assert all(d == here for d in there)
    assert here.allow


@contextmanager
def _server_answering(status: int, body: bytes) -> Iterator[str]:
    """A server that answers every request with ``status`` and ``body``, not as OPA."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(status)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_PUT = do_POST = do_DELETE = _answer  # noqa: N815 - http.server's names

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("status", "body"), [(200, b"<html>Bad gateway</html>"), (502, b"Bad gateway"), (404, b"{}")]
)
def test_a_server_that_does_not_answer_as_opa_is_unavailable(
    bundle: Bundle, status: int, body: bytes
) -> None:
    answering = _server_answering(status, body)
    with answering as url, pytest.raises(EngineUnavailable) as caught:
        OpaServerEngine(bundle, url, timeout=2)
    assert caught.value.detail == (
        f"the OPA server at {url} answered with something that is not OPA's API, so it did"
        " not take the bundle"
    )
