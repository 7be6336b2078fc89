"""The demo region as real processes, a load of family queries, and checks on the log.

Six connectors (``junction connector serve``) and one or more brokers (``junction broker
serve``) run as separate processes on ports chosen at run time, through the demo's own
launcher; tests break them with signals and files, drive concurrent caseworkers at
them, and then read the broker's audit log straight from its database.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from audit.search import SearchQuery, search_entries
from audit.store import Store
from broker.demo.launcher import DemoProcesses
from broker.demo.layout import DemoLayout, DemoPorts, prepare
from broker.foundation import open_dev_issuer
from broker.identity.principal import Role
from broker.settings import BrokerSettings

PEOPLE = 400


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive free loopback ports, picked at random so that
    parallel runs do not collide."""
    for _ in range(200):
        base = random.randrange(20_000, 60_000 - count)
        if all(_free(base + offset) for offset in range(count)):
            return base
    raise RuntimeError("no run of free loopback ports found")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Region:
    """The running processes and what a caseworker needs to reach them."""

    layout: DemoLayout
    truth: dict[str, Any]
    processes: DemoProcesses
    environ: dict[str, str]
    brokers: dict[str, str] = field(default_factory=dict)

    def token(self, url: str) -> str:
        """A caseworker's bearer token for the broker at ``url`` (its own issuer URL)."""
        port = int(url.rsplit(":", 1)[1])
        issuer = open_dev_issuer(BrokerSettings(data_dir=self.layout.broker_data, port=port))
        return issuer.mint(
            role=Role.CASEWORKER, agency="council", name="Sam Caseworker", job_role="social_worker"
        )

    def start_broker(self, name: str = "broker", port: int | None = None) -> str:
        url = self.processes.start_broker(name=name, port=port, environ=self.environ)
        self.brokers[name] = url
        return url

    def database_url(self) -> str:
        return self.environ.get("JUNCTION_DATABASE_URL") or (
            f"sqlite:///{self.layout.broker_data / 'broker.db'}"
        )

    @property
    def log_public_key(self) -> Path:
        return self.layout.broker_data / "audit-log.pub"

    def process(self, name: str) -> subprocess.Popen[bytes]:
        return self.processes.processes[name]

    def restart_connector(self, agency: str) -> None:
        """Start a killed connector again on its port and wait until it answers."""
        self.processes.restart_connector(agency)


@contextmanager
def running_region(
    root: Path,
    *,
    environ: dict[str, str] | None = None,
    people: int = PEOPLE,
) -> Iterator[Region]:
    """Six connectors and one broker as processes, with ``environ`` added to the
    broker's settings; all stopped afterwards."""
    base = free_ports(7)
    layout = prepare(root, people, seed=7, ports=DemoPorts(broker=base, first_connector=base + 1))
    truth = json.loads((layout.town / "truth.json").read_text())
    processes = DemoProcesses(layout, root / "logs")
    region = Region(layout, truth, processes, dict(environ or {}))
    try:
        processes.start_connectors()
        processes.seed_registry(region.environ)
        region.start_broker()
        yield region
    finally:
        processes.stop()


# -- queries ---------------------------------------------------------------------------


def subject_of(person: dict[str, Any]) -> dict[str, Any]:
    ids = {k: person[k] for k in ("nhs_number", "upn", "ni_number") if person.get(k)}
    return {
        "given_name": person["given_name"],
        "family_name": person["family_name"],
        "date_of_birth": person["date_of_birth"],
        "sex": person["sex"],
        "postcode": person["postcode"],
        "identifiers": ids,
    }


def query_bodies(truth: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """``count`` child-in-need queries about children several agencies know."""
    people = [p for p in truth["people"] if len(p["records"]) >= 3 and p["role"] == "child"]
    people.sort(key=lambda p: -len(p["records"]))
    assert people, "the town has no child known to three agencies"
    return [
        {
            "subject": subject_of(people[n % len(people)]),
            "purpose": "child_in_need_assessment",
            "legal_basis": "public_task",
            "gateway": "ca1989_s17",
            "case_reference": f"CIN-2026-{n:04d}",
            "justification": "Referral from school about attendance and welfare.",
            "conditions": ["art9_2_g_para18", "art10_para18"],
            "consent_not_sought_reason": "would_prejudice_protection",
        }
        for n in range(count)
    ]


@dataclass(frozen=True)
class Answer:
    """What one caseworker's request came back with."""

    url: str
    status: int | None  # None: no HTTP answer at all (connection refused or reset)
    body: dict[str, Any]
    elapsed: float
    content_type: str = ""
    error: str = ""

    @property
    def view(self) -> dict[str, Any] | None:
        return self.body if self.status == 200 else None


async def ask(client: httpx.AsyncClient, url: str, token: str, body: dict[str, Any]) -> Answer:
    started = time.monotonic()
    try:
        response = await client.post(
            f"{url}/v1/family-queries", json=body, headers={"Authorization": f"Bearer {token}"}
        )
    except httpx.HTTPError as exc:
        return Answer(url, None, {}, time.monotonic() - started, error=type(exc).__name__)
    elapsed = time.monotonic() - started
    try:
        payload = response.json()
    except ValueError:
        payload = {"raw": response.text[:500]}
    return Answer(
        url, response.status_code, payload, elapsed, response.headers.get("content-type", "")
    )


async def load(
    region: Region,
    bodies: Sequence[dict[str, Any]],
    *,
    clients: int = 8,
    urls: Sequence[str] | None = None,
    http_timeout: float = 30.0,
) -> list[Answer]:
    """Send ``bodies`` from ``clients`` concurrent caseworkers, spread over ``urls``."""
    targets = list(urls or region.brokers.values())
    tokens = {url: region.token(url) for url in targets}
    work: asyncio.Queue[tuple[int, dict[str, Any]]] = asyncio.Queue()
    for item in enumerate(bodies):
        work.put_nowait(item)
    answers: list[Answer] = []

    async def caseworker(client: httpx.AsyncClient) -> None:
        while not work.empty():
            n, body = work.get_nowait()
            url = targets[n % len(targets)]
            answers.append(await ask(client, url, tokens[url], body))

    async with httpx.AsyncClient(timeout=http_timeout) as client:
        await asyncio.gather(*(caseworker(client) for _ in range(clients)))
    return answers


def status_of(view: dict[str, Any], agency: str) -> str:
    return str(next(a["status"] for a in view["agencies"] if a["agency_id"] == agency))


# -- the log ---------------------------------------------------------------------------


def log_entries(database_url: str) -> list[Any]:
    """Every entry of the broker's audit log, oldest first, read from its database."""
    store = Store.open(database_url, migrate=False)
    try:
        found: list[Any] = []
        before = None
        while True:
            page = search_entries(store, SearchQuery(before=before, limit=500))
            found.extend(page.entries)
            if page.next_before is None:
                return sorted(found, key=lambda e: e.index)
            before = page.next_before
    finally:
        store.close()


def assert_released_with_audit(answers: Sequence[Answer], entries: Sequence[Any]) -> int:
    """Every index a client was given is in the log under its query id, with a match
    entry per agency asked, and every fact a client received is covered by a fetch
    entry of its agency. Returns how many answers were checked."""
    by_index = {e.index: e for e in entries}
    checked = 0
    for answer in answers:
        view = answer.view
        if view is None:
            continue
        query_id = view["query_id"]
        receipt = view["receipt"]
        assert receipt["entries"], f"query {query_id} came back without audit entries"
        for index in receipt["entries"]:
            entry = by_index.get(index)
            assert entry is not None, f"entry {index} of query {query_id} is not in the log"
            assert entry.fields.get("query_id") == query_id, f"entry {index} is another query's"
        kinds = [by_index[i].kind for i in receipt["entries"]]
        assert kinds.count("release") == 1
        assert by_index[receipt["release_entry"]].kind == "release"
        released: dict[str, set[str]] = {}
        for index in receipt["entries"]:
            entry = by_index[index]
            if entry.kind == "fetch":
                agency = entry.fields["counterparty_agency"]
                released.setdefault(agency, set()).update(entry.fields.get("fields_released", ()))
        asked = {by_index[i].fields.get("counterparty_agency") for i in receipt["entries"]}
        for status in view["agencies"]:
            if status["status"] in ("ok", "no_record", "ambiguous", "error", "timeout"):
                assert status["agency_id"] in asked, (
                    f"query {query_id}: {status['agency_id']} answered without a match entry"
                )
        for member in view["members"]:
            for facts in member["facts"].values():
                for fact in facts:
                    assert fact["field"] in released.get(fact["source_agency"], set()), (
                        f"query {query_id}: {fact['field']} from {fact['source_agency']} was "
                        "released without a fetch entry that names it"
                    )
        checked += 1
    return checked


def assert_contiguous(database_url: str) -> int:
    """Indexes are 0..size-1, each exactly once; returns the size."""
    store = Store.open(database_url, migrate=False)
    try:
        with store.read() as conn:
            indexes = [int(i) for i in conn.scalars(sa.text("SELECT idx FROM audit_entries"))]
    finally:
        store.close()
    assert sorted(indexes) == list(range(len(indexes))), "an audit index is repeated or skipped"
    return len(indexes)


def verify_log(region: Region, database_url: str | None = None) -> str:
    """Run ``junction audit verify`` on the broker's database (or ``database_url``);
    return its output."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "broker.cli",
            "audit",
            "verify",
            "--db",
            database_url or region.database_url(),
            "--public-key",
            str(region.log_public_key),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, f"the log does not verify:\n{result.stdout}\n{result.stderr}"
    return result.stdout
