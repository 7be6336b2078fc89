"""Prometheus metrics of one connector: requests by endpoint and outcome, and latencies.

Each app gets its own registry, so two connectors in one process (as in tests) keep
separate counts.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "ConnectorMetrics"]

# Connector latencies are milliseconds; the default buckets start far too coarse.
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ConnectorMetrics:
    """The counters and histograms the service updates, in their own registry."""

    def __init__(self, agency_id: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = {"agency": agency_id}
        self.requests = Counter(
            "junction_connector_requests",
            "Requests served, by endpoint and outcome.",
            ["endpoint", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "junction_connector_request_seconds",
            "Time to answer a request, by endpoint.",
            ["endpoint"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.source_latency = Histogram(
            "junction_connector_source_seconds",
            "Time spent in the agency's own system, by operation.",
            ["operation"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.info = Counter(
            "junction_connector_starts",
            "Times this connector started, labelled with its agency.",
            list(labels),
            registry=self.registry,
        )
        self.info.labels(**labels).inc()

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
