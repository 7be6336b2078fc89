"""``junction connector check`` over files an agency got wrong: one line each, no traceback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from broker.cli import app as cli
from connectors.config import load_service_config
from connectors.errors import ConfigError, SourceError
from connectors.local_audit import AuditLogRecorder
from connectors.mapping import CsvSourceSpec, load_mapping
from connectors.protocol.keys import KeyPair
from connectors.protocol.messages import Subject
from connectors.service.wiring import build_connector
from connectors.settings import ConnectorSettings
from connectors.sources import CsvSource
from tests.connectors.source_kit import export_csv
from tests.connectors.town_kit import AGENCIES, AgencySetup, configure_agency, make_town

# "café" in Latin-1: the é (0xe9) is not followed by a continuation byte.
LATIN_1 = b"# caf\xe9\n"


@pytest.fixture(scope="module")
def town(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("town")
    make_town(out, people=120)
    return out


def _own_copies(setup: AgencySetup, root: Path) -> None:
    """Point the config at copies of the mapping and policy kept beside it."""
    for name in ("police.yaml", "police.rego"):
        (root / name).write_bytes((AGENCIES / name).read_bytes())
        text = setup.config_path.read_text().replace(str(AGENCIES / name), name)
        setup.config_path.write_text(text)


def _csv_source(root: Path, town: Path) -> None:
    """Make the copied mapping read CSV exports of the town's police database."""
    export_csv(town / "police.db", root / "exports")
    mapping = (root / "police.yaml").read_text()
    sql = "  kind: sql\n  url: sqlite:///${JUNCTION_TOWN_DIR}/police.db\n"
    assert sql in mapping
    (root / "police.yaml").write_text(mapping.replace(sql, "  kind: csv\n  directory: exports\n"))


def _check(setup: AgencySetup) -> Any:
    return CliRunner().invoke(
        cli, ["connector", "check", "--config", str(setup.config_path)], env=setup.environ
    )


def _fails_check_and_serve(setup: AgencySetup, expected: str) -> None:
    """``check`` stops with ``expected`` as its one line, and so does starting to serve."""
    result = _check(setup)
    assert result.exit_code == 2
    assert result.stderr == f"error: {expected}\n"
    with pytest.raises(ConfigError) as caught:
        build_connector(
            load_service_config(setup.config_path), ConnectorSettings(), environ=setup.environ
        )
    assert caught.value.detail == expected


def _prepend(path: Path) -> None:
    path.write_bytes(LATIN_1 + path.read_bytes())


CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "config": (lambda root: root / "agency.yaml", "agency.yaml"),
    "mapping": (lambda root: root / "police.yaml", "police.yaml"),
    "local policy": (lambda root: root / "police.rego", "police.rego"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_file_that_is_not_utf8_is_named_with_its_first_bad_byte(
    tmp_path: Path, town: Path, case: str
) -> None:
    setup = configure_agency(tmp_path, town, "police")
    _own_copies(setup, tmp_path)
    path_of, name = CASES[case]
    _prepend(path_of(tmp_path))
    result = _check(setup)
    assert result.exit_code == 2
    assert result.stderr == f"error: {tmp_path / name} is not UTF-8 text (byte 0xe9 at offset 5)\n"


def test_a_csv_export_that_is_not_utf8_is_named_by_check(tmp_path: Path, town: Path) -> None:
    setup = configure_agency(tmp_path, town, "police")
    _own_copies(setup, tmp_path)
    _csv_source(tmp_path, town)
    assert _check(setup).exit_code == 0
    people = tmp_path / "exports" / "PERSON.csv"
    data = people.read_bytes()
    second_row = data.index(b"\n") + 1
    people.write_bytes(data[:second_row] + b"\xff" + data[second_row:])
    result = _check(setup)
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: person.key: {people} is not UTF-8 text (byte 0xff at offset {second_row})\n"
    )


def test_a_csv_export_that_turns_out_not_utf8_is_a_source_error_naming_it(
    tmp_path: Path, town: Path
) -> None:
    setup = configure_agency(tmp_path, town, "police")
    _own_copies(setup, tmp_path)
    _csv_source(tmp_path, town)
    mapping = load_mapping(tmp_path / "police.yaml", environ=setup.environ)
    assert isinstance(mapping.source, CsvSourceSpec)
    source = CsvSource(mapping)
    source.check()
    # The export is replaced while the connector serves: a request reads the bad byte.
    people = tmp_path / "exports" / "PERSON.csv"
    people.write_bytes(people.read_bytes() + b"\xe9\n")
    with pytest.raises(SourceError) as caught:
        source.block(Subject(given_name="Ann", family_name="Smith"), 10)
    offset = people.stat().st_size - 2
    assert caught.value.detail == f"{people} is not UTF-8 text (byte 0xe9 at offset {offset})"


@pytest.mark.parametrize(
    "url", ["not a url", "postgresql+psycopg://reader:s3cret@db:notaport/rms", "://x"]
)
def test_a_source_url_that_is_not_a_url_names_the_setting(
    tmp_path: Path, town: Path, url: str
) -> None:
    setup = configure_agency(tmp_path, town, "police")
    _own_copies(setup, tmp_path)
    mapping = tmp_path / "police.yaml"
    sql = "url: sqlite:///${JUNCTION_TOWN_DIR}/police.db"
    mapping.write_text(mapping.read_text().replace(sql, f'url: "{url}"'))
    result = _check(setup)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: source.url: not a valid SQLAlchemy URL; expected ")
    assert result.stderr.count("\n") == 1
    assert "s3cret" not in result.stderr


def test_a_source_url_override_that_is_not_a_url_names_the_variable(
    tmp_path: Path, town: Path
) -> None:
    setup = configure_agency(tmp_path, town, "police")
    result = CliRunner().invoke(
        cli,
        ["connector", "check", "--config", str(setup.config_path)],
        env={**setup.environ, "JUNCTION_CONNECTOR_SOURCE_URL": "not a url"},
    )
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "error: JUNCTION_CONNECTOR_SOURCE_URL: not a valid SQLAlchemy URL; expected "
    )


def _audit_url(setup: AgencySetup, url: str) -> None:
    text = setup.config_path.read_text()
    assert "sqlite:///state/audit.db" in text
    setup.config_path.write_text(text.replace("sqlite:///state/audit.db", url))


def test_check_refuses_an_audit_database_serve_could_not_use(tmp_path: Path, town: Path) -> None:
    setup = configure_agency(tmp_path, town, "police")
    (tmp_path / "garbage.db").write_bytes(b"not a database\n" * 300)
    other = AuditLogRecorder.open(
        f"sqlite:///{tmp_path / 'health.db'}", KeyPair.generate(), agency_id="health"
    )
    other.close()
    expected = {
        "not a url": "error: audit.database_url: not a valid SQLAlchemy URL; expected ",
        "sqlite:///nowhere/audit.db": (
            f"error: audit.database_url: cannot create {tmp_path}/nowhere/audit.db: "
            f"{tmp_path}/nowhere does not exist\n"
        ),
        "sqlite:///garbage.db": (
            f"error: audit.database_url: cannot open sqlite:///{tmp_path}/garbage.db: "
            "file is not a database\n"
        ),
        "sqlite:///health.db": (
            f"error: audit.database_url: sqlite:///{tmp_path}/health.db holds the log of "
            "'junction.connector/health', not 'junction.connector/police'\n"
        ),
        "postgresql+psycopg://junction:s3cret@127.0.0.1:1/audit": (
            "error: audit.database_url: cannot open "
            "postgresql+psycopg://junction:***@127.0.0.1:1/audit: connection failed: "
        ),
        "mysql://reader:s3cret@db/audit": (
            "error: audit.database_url: the local audit log runs on SQLite or PostgreSQL, "
            "not mysql\n"
        ),
    }
    good = setup.config_path.read_text()
    for url, message in expected.items():
        setup.config_path.write_text(good)
        _audit_url(setup, url)
        result = _check(setup)
        assert result.exit_code == 2, url
        assert result.stderr.startswith(message), url
        assert result.stderr.count("\n") == 1, url
        assert "s3cret" not in result.stderr
    assert not (tmp_path / "state" / "audit.db").exists()  # check never creates the log


def _date_format(mapping: Path, fmt: str, was: str = "%d/%m/%Y") -> None:
    text = mapping.read_text()
    assert f'format: "{was}"' in text
    mapping.write_text(text.replace(f'format: "{was}"', f'format: "{fmt}"'))


def _police_reading(kind: str, root: Path, town: Path) -> AgencySetup:
    """The police connector with its own mapping, reading the town's database (sql) or
    CSV exports of it (csv)."""
    setup = configure_agency(root, town, "police")
    _own_copies(setup, root)
    if kind == "csv":
        _csv_source(root, town)
    return setup


@pytest.mark.parametrize("kind", ["sql", "csv"])
def test_check_refuses_a_date_of_birth_format_the_data_does_not_have(
    tmp_path: Path, town: Path, kind: str
) -> None:
    setup = _police_reading(kind, tmp_path, town)
    _date_format(tmp_path / "police.yaml", "%Y-%m-%d")
    result = _check(setup)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: person.date_of_birth: ")
    assert "of PERSON.DOB_TXT do not match format '%Y-%m-%d' (one is shaped '99/99/9999')" in (
        result.stderr
    )
    # Month and day the other way round: most of them fail too.
    _date_format(tmp_path / "police.yaml", "%m/%d/%Y", was="%Y-%m-%d")
    assert "do not match format '%m/%d/%Y'" in _check(setup).stderr


def test_check_names_a_consent_key_the_connector_could_not_use(tmp_path: Path, town: Path) -> None:
    setup = configure_agency(tmp_path, town, "police")
    text = setup.config_path.read_text()
    setup.config_path.write_text(text + "consent_key: keys/consent.key\n")
    missing = _check(setup)
    (tmp_path / "keys" / "consent.key").write_text("abcd\n")
    short = _check(setup)
    (tmp_path / "keys" / "consent.key").write_text("c0" * 32 + "\n")
    good = _check(setup)
    assert missing.exit_code == 2
    assert missing.stderr.startswith("error: cannot read the consent key ")
    assert short.exit_code == 2
    assert short.stderr == (
        f"error: the consent key {tmp_path / 'keys' / 'consent.key'} holds 2 bytes; "
        "it needs 32 or more\n"
    )
    assert good.exit_code == 0, good.stderr


def test_a_local_policy_whose_decision_misnames_a_member_fails_check(
    tmp_path: Path, town: Path
) -> None:
    setup = configure_agency(tmp_path, town, "police")
    _own_copies(setup, tmp_path)
    policy = tmp_path / "police.rego"
    text = policy.read_text()
    assert '"fields": [f | some f in fields]' in text
    policy.write_text(text.replace('"fields": [f |', '"withheld": [f |'))
    result = _check(setup)
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {policy}: decision.withheld: not a known member "
        "(the decision's shape is in the agency guide)\n"
    )


def test_a_config_member_given_twice_fails_check(tmp_path: Path, town: Path) -> None:
    setup = configure_agency(tmp_path, town, "police")
    text = setup.config_path.read_text()
    setup.config_path.write_text(text + "state_dir: elsewhere\n")
    first = text.splitlines().index("state_dir: state") + 1
    second = len(text.splitlines()) + 1
    result = _check(setup)
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {setup.config_path}: not valid YAML at line {second}, column 1: "
        f"'state_dir' is given twice (first at line {first}); keep one\n"
    )


def test_a_source_url_whose_password_holds_an_at_sign_shows_none_of_it(
    tmp_path: Path, town: Path
) -> None:
    # Read as written, the URL's host would be the password's end: "dor&3@127.0.0.1".
    setup = configure_agency(tmp_path, town, "police")
    _own_copies(setup, tmp_path)
    mapping = tmp_path / "police.yaml"
    sql = "url: sqlite:///${JUNCTION_TOWN_DIR}/police.db"
    mapping.write_text(
        mapping.read_text().replace(
            sql, "url: postgresql+psycopg://reader:${DB_PASSWORD}@127.0.0.1:1/rms"
        )
    )
    for password in ("Tr0ub@dor&3", "Tr0ub@dor/3"):
        result = CliRunner().invoke(
            cli,
            ["connector", "check", "--config", str(setup.config_path)],
            env={**setup.environ, "DB_PASSWORD": password},
        )
        assert result.exit_code == 2
        assert result.stderr == (
            "error: source.url: the user name or password holds an '@'; "
            "write each '@' in them as %40\n"
        )


def test_an_audit_url_whose_password_holds_an_at_sign_shows_none_of_it(
    tmp_path: Path, town: Path
) -> None:
    setup = configure_agency(tmp_path, town, "police")
    _audit_url(setup, "postgresql+psycopg://junction:Tr0ub@dor&3@127.0.0.1:1/audit")
    result = _check(setup)
    assert result.exit_code == 2
    assert result.stderr == (
        "error: audit.database_url: the user name or password holds an '@'; "
        "write each '@' in them as %40\n"
    )


@pytest.mark.parametrize("shared", ["linkage_key", "consent_key"])
def test_a_reference_secret_shared_with_others_fails_check_and_serve(
    tmp_path: Path, town: Path, shared: str
) -> None:
    # The linkage key is at every connector and the consent key at the broker: either
    # as the reference secret would let them read record keys out of references.
    setup = configure_agency(tmp_path, town, "police")
    text = setup.config_path.read_text()
    if shared == "linkage_key":
        text = text.replace("linkage_key: keys/linkage.key", "linkage_key: keys/police.refs")
    else:
        refs = (tmp_path / "keys" / "police.refs").read_text()
        (tmp_path / "keys" / "consent.key").write_text(refs)
        text += "consent_key: keys/consent.key\n"
    setup.config_path.write_text(text)
    refs, what = tmp_path / "keys" / "police.refs", shared.replace("_", " ")
    expected = (
        f"the reference secret {refs} is also the {what}; it must be this agency's alone: "
        "write a new file with openssl rand -hex 32 and name it in reference_secret"
    )
    _fails_check_and_serve(setup, expected)


def test_a_consent_key_that_is_the_linkage_key_fails_check_and_serve(
    tmp_path: Path, town: Path
) -> None:
    # The broker holds the consent key: with the linkage key too it could link records.
    setup = configure_agency(tmp_path, town, "police")
    text = setup.config_path.read_text() + "consent_key: keys/linkage.key\n"
    setup.config_path.write_text(text)
    expected = (
        f"the consent key {tmp_path / 'keys' / 'linkage.key'} is also the linkage key; the"
        " broker holds the consent key and must not be able to make linkage tokens: name the"
        " broker's consent.key in consent_key, and the connectors' own shared key in"
        " linkage_key"
    )
    _fails_check_and_serve(setup, expected)


@pytest.mark.parametrize("kind", ["sql", "csv"])
def test_check_lists_every_table_and_column_the_source_does_not_have(
    tmp_path: Path, town: Path, kind: str
) -> None:
    # An agency writing its first mapping gets every misnamed column at once, not one a run.
    setup = _police_reading(kind, tmp_path, town)
    mapping = tmp_path / "police.yaml"
    text = mapping.read_text()
    for was, now in (
        ("given_name: FIRST_NM", "given_name: FIRST_NAME"),
        ("family_name: LAST_NM", "family_name: SURNAME"),
        ("table: INCIDENT\n", "table: INCIDENTS\n"),
    ):
        assert was in text
        text = text.replace(was, now)
    mapping.write_text(text)
    result = _check(setup)
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 3, result.stderr
    assert lines[0].startswith("error: person.given_name: column PERSON.FIRST_NAME not found in ")
    assert lines[1].startswith("error: person.family_name: column PERSON.SURNAME not found in ")
    # Every field counting incidents names the table: it is reported once.
    assert lines[2].startswith("error: fields.police.")
    assert ": table INCIDENTS not found in " in lines[2]
