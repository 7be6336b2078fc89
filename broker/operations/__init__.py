"""Running the broker: readiness and Prometheus metrics."""
