"""Seeding the registry from a YAML file (the demo, tests, and a fresh deployment).

The file lists agencies (each optionally with its connector) and agreements::

    agencies:
      - id: council
        name: Riverside Borough Council
        type: local_authority
        connector:
          base_url: http://127.0.0.1:8101
          public_key: <base64 raw Ed25519 key>
    agreements:
      - id: dsa-council-police
        parties: [council, police]
        purposes: [early_help_assessment]
        legal_bases: [consent]
        fields: [police.domestic_abuse_incidents_12m]
        valid_from: 2025-01-01T00:00:00Z
        status: active

Seeding is repeatable: what is already registered as the file says is left alone, an
agency or agreement that differs is changed (an agreement gets a new version), and each
change is audited like the same change made through the API.

Every connector in the file is asked for its manifest before the first change, so one
that is not running, or signs with another key, changes nothing. A change refused later
(an agreement naming a purpose policy does not know, say) stops the seed with the changes
before it recorded: each is in the audit log already, which no one can take back. The
error says how many; seeding the corrected file again makes the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from broker.errors import BrokerError, InvalidChange, NotFound
from broker.identity.principal import Principal
from broker.registry.schemas import (
    AgencyChange,
    AgencyIn,
    AgreementCreate,
    AgreementIn,
    ConnectorIn,
)
from broker.registry.service import RegistryService
from connectors.encoding import not_utf8

__all__ = ["RegistryFile", "SeedReport", "load_registry_file", "read_registry_file"]


class _SeedAgency(AgencyIn):
    connector: ConnectorIn | None = None


class RegistryFile(BaseModel):
    """The parsed contents of a registry YAML file."""

    model_config = ConfigDict(extra="forbid")

    agencies: list[_SeedAgency] = Field(default_factory=list)
    agreements: list[AgreementCreate] = Field(default_factory=list)

    @model_validator(mode="after")
    def _each_once(self) -> RegistryFile:
        # Listed twice, one entry would silently replace the other: say which.
        for kind, ids in (
            ("agency", [a.id for a in self.agencies]),
            ("agreement", [a.id for a in self.agreements]),
        ):
            twice = sorted({i for i in ids if ids.count(i) > 1})
            if twice:
                listed = ", ".join(repr(i) for i in twice)
                raise ValueError(f"{kind} {listed} is listed more than once; list each once")
        return self


@dataclass(frozen=True, slots=True)
class SeedReport:
    """How many agencies, connectors and agreements were there, and how many changed."""

    agencies: int
    connectors: int
    agreements: int
    changes: int


def read_registry_file(path: Path) -> RegistryFile:
    """Parse ``path``. Raises ``InvalidChange`` saying what is wrong and where."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidChange(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InvalidChange(not_utf8(path)) from None
    except RecursionError:
        # PyYAML reads nested collections by recursion: a file nested thousands deep
        # would otherwise end the command with a traceback.
        raise InvalidChange(
            f"{path} nests lists or mappings too deeply to read; a registry file needs"
            " only a few levels"
        ) from None
    except yaml.YAMLError as exc:
        # PyYAML's own message spans lines and quotes the file: the place and the
        # problem are enough.
        mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InvalidChange(
            f"{path} is not valid YAML{where}" + (f": {problem}" if problem else "")
        ) from None
    try:
        return RegistryFile.model_validate(data or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        raise InvalidChange(
            f"{path}: {where}: {message}" if where else f"{path}: {message}"
        ) from None


async def load_registry_file(service: RegistryService, actor: Principal, path: Path) -> SeedReport:
    """Register everything in the file at ``path`` (see the module docstring).

    Connectors must be running: their manifests are fetched and checked, all of them
    before the first change. Raises ``InvalidChange`` for a bad file and whatever the
    registry raises for a change it refuses (``ManifestRejected``,
    ``ConnectorUnreachable``, ``StoreUnavailable``), with a note of how many changes
    were recorded before it, if any.
    """
    seed = read_registry_file(path)
    for listed in seed.agencies:
        if listed.connector is not None:
            await service.check_connector(listed.id, listed.connector, listed.type)
    changes = 0
    try:
        for agency in seed.agencies:
            before = None
            try:
                before = service.get_agency(agency.id)
            except NotFound:
                service.create_agency(
                    actor, AgencyIn(id=agency.id, name=agency.name, type=agency.type)
                )
                changes += 1
            if before is not None and (before.name, before.type) != (agency.name, agency.type):
                # A connector that moves with the new type is the one asked to confirm it.
                moved = agency.connector if before.type != agency.type else None
                await service.change_agency(
                    actor, agency.id, AgencyChange(name=agency.name, type=agency.type), moved
                )
                changes += 1
            if agency.connector is not None:
                old = before.connector if before is not None else None
                new = await service.register_connector(actor, agency.id, agency.connector)
                changes += int(old != new)
        for agreement in seed.agreements:
            try:
                latest = service.get_agreement(agreement.id)
            except NotFound:
                service.create_agreement(actor, agreement)
                changes += 1
                continue
            terms = AgreementIn.model_validate(agreement.model_dump(exclude={"id"}))
            changed = service.change_agreement(actor, agreement.id, terms)
            changes += int(changed.version != latest.version)
    except BrokerError as exc:
        if changes:
            made = "1 change was" if changes == 1 else f"{changes} changes were"
            exc.add_note(
                f"{made} recorded from {path} before it, and kept: correct the file and"
                " seed it again"
            )
        raise
    return SeedReport(
        agencies=len(seed.agencies),
        connectors=sum(1 for a in seed.agencies if a.connector is not None),
        agreements=len(seed.agreements),
        changes=changes,
    )
