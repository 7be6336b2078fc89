"""The embedded demo: a synthetic town, six agency connectors and the broker on one machine."""
