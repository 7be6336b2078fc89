"""The broker's database: migrations beside the audit log's, and failures as problems."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory

import audit
from audit.checkpoint import NoteSigner
from audit.log import DEFAULT_ORIGIN, AuditLog
from audit.store import SQLITE_CHECKPOINT_PAGES, Store
from broker import db
from broker.db import Database, create_engine, upgrade
from broker.errors import ConfigurationError, StoreUnavailable
from broker.identity import Role
from broker.registry import RegistryService
from policies.bundle import load_bundle
from policies.settings import DEFAULT_BUNDLE_DIR
from tests.broker.foundation_kit import IssuerServer, running_broker

pytestmark = pytest.mark.anyio

BROKER_TABLES = {
    "broker_agencies",
    "broker_connectors",
    "broker_agreements",
    "broker_consents",
    "broker_consent_subjects",
    "broker_consent_states",
}

_CATALOGUE = load_bundle([DEFAULT_BUNDLE_DIR]).data["catalogue"]


def shipped_catalogue() -> dict[str, object]:
    return dict(_CATALOGUE)


async def test_broker_and_audit_tables_share_a_database_with_separate_histories(
    tmp_path: Path, dev_issuer: IssuerServer, database_url: str
):
    async with running_broker(tmp_path, dev_issuer, database_url=database_url) as broker:
        url = broker.settings.resolved_database_url()
        if not database_url:
            # The kit keeps the audit log apart on SQLite; put one in the same file.
            AuditLog.open(url, NoteSigner.generate(DEFAULT_ORIGIN)).close()
        engine = create_engine(url)
        upgrade(engine)  # a second upgrade changes nothing
        with engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            broker_version = conn.execute(
                sa.text("SELECT version_num FROM broker_alembic_version")
            ).scalar_one()
            audit_version = conn.execute(
                sa.text("SELECT version_num FROM audit_alembic_version")
            ).scalar_one()
        engine.dispose()
    assert tables >= BROKER_TABLES | {"audit_entries", "broker_alembic_version"}
    assert broker_version == _head(Path(db.__file__).with_name("migrations"))
    assert audit_version == _head(Path(audit.__file__).with_name("migrations"))


def _head(location: Path) -> str:
    config = Config()
    config.set_main_option("script_location", str(location))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("sqlite://", "not an in-memory database"),
        ("mysql+pymysql://root@127.0.0.1/x", "SQLite or PostgreSQL"),
        ("nonsense", "cannot use database URL"),
    ],
)
def test_an_unusable_database_url_is_a_configuration_error(url: str, words: str):
    with pytest.raises(ConfigurationError) as caught:
        Database.open(url)
    assert words in caught.value.detail


def test_an_unreachable_database_is_store_unavailable():
    with pytest.raises(StoreUnavailable) as caught:
        Database.open("postgresql+psycopg://postgres@127.0.0.1:1/junction")
    assert "cannot prepare the broker's tables" in caught.value.detail


async def test_a_database_failure_reaches_the_caller_as_503(
    tmp_path: Path, dev_issuer: IssuerServer
):
    dead = Database(create_engine("postgresql+psycopg://postgres@127.0.0.1:1/junction"))
    async with running_broker(tmp_path, dev_issuer) as broker:
        broker.app.state.registry = RegistryService(
            dead,
            broker.audit,
            http=httpx.AsyncClient(),
            broker_name="broker",
            catalogue=shipped_catalogue,
        )
        response = await broker.client.get("/v1/agencies", headers=broker.as_(Role.ADMIN))
    assert response.status_code == 503
    assert response.json()["type"] == "urn:junction:problem:store-unavailable"
    assert "try again shortly" in response.json()["detail"]


def _write_behind_an_audit_write(
    broker_file: Path, audit_file: Path, *, hold: float
) -> tuple[float, float]:
    """An audit write holds its transaction open for ``hold`` seconds while a broker
    write to ``broker_file`` starts. When (perf_counter) the audit write committed, and
    when the broker's write was done."""
    database = Database.open(f"sqlite:///{broker_file}")
    store = Store.open(f"sqlite:///{audit_file}")
    with database.write() as connection:
        connection.execute(sa.text("CREATE TABLE scratch (x INTEGER)"))
    began = threading.Event()
    committed: list[float] = []

    def audit_write() -> None:
        with store.write() as conn:
            conn.execute(sa.text("INSERT INTO audit_meta (key, value) VALUES ('held', 'x')"))
            began.set()
            time.sleep(hold)
        committed.append(time.perf_counter())

    holder = threading.Thread(target=audit_write)
    holder.start()
    assert began.wait(10)
    with database.write() as connection:
        connection.execute(sa.text("INSERT INTO scratch (x) VALUES (1)"))
    written = time.perf_counter()
    holder.join(10)
    store.close()
    database.close()
    return committed[0], written


def test_a_write_waits_no_longer_than_the_audit_write_before_it_in_one_sqlite_file(
    tmp_path: Path,
):
    # SQLite alone would make the second writer sleep and look again 1, 2, 5, 10 ...
    # 25 ms apart: about 28 ms late for a 150 ms write. The file's write lock hands over
    # at the commit.
    committed, written = _write_behind_an_audit_write(
        tmp_path / "broker.db", tmp_path / "broker.db", hold=0.15
    )
    assert written - committed < 0.015


def test_the_broker_and_its_log_copy_the_write_ahead_log_at_the_same_size(tmp_path: Path):
    # Were the broker's threshold the smaller, its writes would do the log's copying.
    url = f"sqlite:///{tmp_path / 'broker.db'}"
    database, store = Database.open(url), Store.open(url)
    try:
        with database.write() as broker_side, store.read() as log_side:
            thresholds = {
                side.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
                for side in (broker_side, log_side)
            }
    finally:
        store.close()
        database.close()
    assert thresholds == {SQLITE_CHECKPOINT_PAGES}
    assert SQLITE_CHECKPOINT_PAGES > 1000  # SQLite's own default


def test_writers_to_different_sqlite_files_do_not_wait_for_each_other(tmp_path: Path):
    committed, written = _write_behind_an_audit_write(
        tmp_path / "broker.db", tmp_path / "audit.db", hold=0.5
    )
    assert written < committed - 0.3
