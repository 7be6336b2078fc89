"""Log lines never carry personal data."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import httpx
import pytest
import structlog
from fastapi import FastAPI

from connectors.observability import REDACTED, configure_logging
from connectors.protocol.problems import install_problem_handlers
from tests.live_server import serving


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()


def _last_json_line(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return dict(json.loads(lines[-1]))


def test_personal_members_are_redacted_wherever_they_are(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(json_output=True)
    structlog.get_logger("t").info(
        "match_requested",
        given_name="Amelia",
        date_of_birth="2014-05-02",
        request={"subject": {"family_name": "Okafor"}, "purpose": "early_help"},
        agency="police",
    )
    line = _last_json_line(capsys)
    text = json.dumps(line)
    assert "Amelia" not in text
    assert "2014-05-02" not in text
    assert "Okafor" not in text
    assert line["given_name"] == REDACTED
    assert line["agency"] == "police"
    assert line["request"] == {"subject": REDACTED, "purpose": "early_help"}


def test_identifiers_in_free_text_are_masked(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(json_output=True)
    structlog.get_logger("t").warning(
        "lookup failed for 943 476 5919 at LS6 2AB, NI QQ123456C; retry in 5 s"
    )
    event = str(_last_json_line(capsys)["event"])
    assert "943 476 5919" not in event
    assert "LS6 2AB" not in event
    assert "QQ123456C" not in event
    assert "retry in 5 s" in event


def test_standard_library_loggers_are_redacted_too(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(json_output=True)
    logging.getLogger("uvicorn.error").warning("client sent postcode M1 1AE")
    assert "M1 1AE" not in capsys.readouterr().err


def test_terminal_output_is_readable_not_json(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(json_output=False)
    structlog.get_logger("t").info("service_started", port=8000)
    err = capsys.readouterr().err
    assert "service_started" in err
    assert "port" in err
    assert not err.lstrip().startswith("{")


@pytest.mark.parametrize("json_output", [False, True])
def test_a_logged_traceback_carries_no_local_variables(
    capsys: pytest.CaptureFixture[str], json_output: bool
) -> None:
    configure_logging(json_output=json_output)

    def handle(authorization: str) -> None:
        raise ValueError("the request failed")

    token = "Bearer " + "-".join(["secret", "token", "body"])  # not in any source line
    try:
        handle(token)
    except ValueError:
        structlog.get_logger("t").exception("unhandled_error")
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
    err = capsys.readouterr().err
    assert "the request failed" in err
    assert "secret-token-body" not in err


def test_an_unexpected_error_is_logged_once_with_its_reference(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(json_output=False)
    app = FastAPI()
    install_problem_handlers(app, ())

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("the store fell over")

    with serving(app) as port:
        response = httpx.get(f"http://127.0.0.1:{port}/boom")
    err = capsys.readouterr().err
    reference = response.json()["detail"].split("reference ")[1].split(";")[0]
    assert response.status_code == 500
    assert reference in err
    # Starlette re-raises after the handler answers, for the server to log; once is enough.
    assert err.count("Traceback (most recent call last)") == 1
    assert "Exception in ASGI application" not in err


@pytest.mark.parametrize("json_output", [False, True])
def test_an_exception_message_is_masked_like_any_other_text(
    capsys: pytest.CaptureFixture[str], json_output: bool
) -> None:
    configure_logging(json_output=json_output)

    def look_up() -> None:
        raise ValueError("no record for NHS number 943 476 5919 at LS6 2AB")

    try:
        look_up()
    except ValueError:
        structlog.get_logger("t").exception("unhandled_error")
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
    err = capsys.readouterr().err
    assert err.count("ValueError: no record for NHS number") == 2
    assert "943 476 5919" not in err
    assert "LS6 2AB" not in err


def test_a_standard_library_traceback_is_written_out_in_json(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(json_output=True)

    def write() -> None:
        raise RuntimeError("the store fell over")

    try:
        write()
    except RuntimeError:
        logging.getLogger("junction.audit").exception("audit_writer_stopped")
    line = _last_json_line(capsys)
    assert "Traceback (most recent call last)" in str(line["exception"])
    assert "exc_info" not in line


def test_pupil_numbers_dates_of_birth_and_rejected_inputs_are_masked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from pydantic import BaseModel, ValidationError

    class Person(BaseModel):
        age: int

    configure_logging(json_output=True)
    try:
        Person.model_validate({"age": "Amelia Okafor"})
    except ValidationError as exc:
        rejected = str(exc)
    structlog.get_logger("t").warning(
        "lookup failed", error=f"UPN Y801200114002, born 2014-05-02 or 02/05/2014; {rejected}"
    )
    error = str(_last_json_line(capsys)["error"])
    assert "Y801200114002" not in error
    assert "2014-05-02" not in error
    assert "02/05/2014" not in error
    assert "Amelia" not in error
    assert "Input should be a valid integer" in error


def test_the_access_log_names_the_path_but_not_the_query_string(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(json_output=False)
    app = FastAPI()

    @app.get("/v1/family-queries")
    def queries() -> list[str]:
        return []

    with serving(app) as port:
        response = httpx.get(
            f"http://127.0.0.1:{port}/v1/family-queries",
            params={"given_name": "Amelia", "family_name": "Okafor", "dob": "2014-05-02"},
        )
    err = capsys.readouterr().err
    assert response.status_code == 200
    assert '"GET /v1/family-queries?[redacted] HTTP/1.1" 200' in err
    assert "Amelia" not in err
    assert "Okafor" not in err
