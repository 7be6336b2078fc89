"""The agency registry: agencies, their connectors, and data sharing agreements."""

from __future__ import annotations

from broker.registry.seed import RegistryFile, SeedReport, load_registry_file, read_registry_file
from broker.registry.service import ConnectorRecord, ManifestField, RegistryService

__all__ = [
    "ConnectorRecord",
    "ManifestField",
    "RegistryFile",
    "RegistryService",
    "SeedReport",
    "load_registry_file",
    "read_registry_file",
]
