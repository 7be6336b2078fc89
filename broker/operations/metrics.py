"""The broker's Prometheus metrics, on a registry of its own (never the global one),
so two brokers in one process (as in tests) never share or collide on a metric.

Labels carry agency ids and statuses only: never a person, a caseworker or a purpose
text, which keeps the metrics free of personal data and their cardinality small.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest

__all__ = ["CONTENT_TYPE", "BrokerMetrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
_EXCHANGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class BrokerMetrics:
    """Counters and histograms the family query flow reports into (``QueryMetrics``)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self._queries = Counter(
            "junction_family_queries",
            "Family queries answered, by outcome (answered or refused).",
            ["status"],
            registry=self.registry,
        )
        self._exchange_seconds = Histogram(
            "junction_exchange_seconds",
            "Time one agency took to answer one exchange (match or fetch).",
            ["agency", "kind"],
            buckets=_EXCHANGE_BUCKETS,
            registry=self.registry,
        )
        self._exchanges = Counter(
            "junction_exchanges",
            "Exchanges with agencies, by agency, kind and status"
            " (ok, no_record, withheld, refused, timeout, error).",
            ["agency", "kind", "status"],
            registry=self.registry,
        )
        self._policy_seconds = Histogram(
            "junction_policy_decision_seconds",
            "Time one policy evaluation took.",
            buckets=_FAST_BUCKETS,
            registry=self.registry,
        )
        self._audit_seconds = Histogram(
            "junction_audit_append_seconds",
            "Time from handing an entry to the audit log until it was durable.",
            buckets=_FAST_BUCKETS,
            registry=self.registry,
        )

    def query_finished(self, status: str) -> None:
        self._queries.labels(status=status).inc()

    def exchange(self, agency_id: str, kind: str, status: str, seconds: float) -> None:
        self._exchange_seconds.labels(agency=agency_id, kind=kind).observe(seconds)
        self._exchanges.labels(agency=agency_id, kind=kind, status=status).inc()

    def policy_decided(self, seconds: float) -> None:
        self._policy_seconds.observe(seconds)

    def audit_appended(self, seconds: float) -> None:
        self._audit_seconds.observe(seconds)

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)
