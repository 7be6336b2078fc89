"""What the query form offers: purposes, legal bases, gateways, the conditions for special
category and criminal offence data, reasons consent was not sought, break-glass reasons.

Read from the policy bundle's catalogue (the same data the policy decides with), so the
form never offers a purpose policy does not know.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from policies.bundle import load_bundle
from policies.errors import PolicyError
from policies.settings import PolicySettings

__all__ = ["Catalogue", "Choice", "PurposeChoice"]


@dataclass(frozen=True, slots=True)
class Choice:
    code: str
    title: str
    hint: str = ""


@dataclass(frozen=True, slots=True)
class PurposeChoice:
    code: str
    title: str
    gateways: tuple[Choice, ...]
    consent_allowed: bool
    roles: tuple[str, ...]
    case_reference_required: bool
    conditions: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The purpose in the middle of a sentence: "child in need assessment"."""
        return self.title.split(" (")[0].lower()

    @property
    def hint(self) -> str:
        """The plain-language help shown under the purpose's radio button."""
        who = ", ".join(role.replace("_", " ") for role in self.roles)
        basis = "consent or " if self.consent_allowed else ""
        names = "; ".join(g.title for g in self.gateways) or "none"
        ref = " A case reference is required." if self.case_reference_required else ""
        return f"For: {who}. Lawful on {basis}a public task under: {names}.{ref}"


@dataclass(frozen=True, slots=True)
class Catalogue:
    purposes: tuple[PurposeChoice, ...]
    legal_bases: tuple[Choice, ...]
    gateways: tuple[Choice, ...]
    conditions: tuple[Choice, ...]
    reasons_needed: frozenset[str]
    not_sought_reasons: tuple[Choice, ...]
    break_glass_reasons: tuple[Choice, ...]
    break_glass_roles: tuple[str, ...]
    reason_texts: Mapping[str, str]

    def purpose_title(self, code: str) -> str:
        for purpose in self.purposes:
            if purpose.code == code:
                return purpose.title
        return code.replace("_", " ")

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Catalogue:
        """Build from the bundle's ``catalogue`` document. Raises ``KeyError`` if malformed."""
        gateways = {
            code: Choice(code, f"{item['statute']} — {item['title']}", item.get("article", ""))
            for code, item in data["gateways"].items()
        }
        purposes = tuple(
            PurposeChoice(
                code=code,
                title=item["title"],
                gateways=tuple(gateways[b] for b in item["legal_bases"] if b in gateways),
                consent_allowed="consent" in item["legal_bases"],
                roles=tuple(item.get("roles", ())),
                case_reference_required=bool(item.get("case_reference_required")),
                conditions=tuple(item.get("conditions", ())),
            )
            for code, item in data["purposes"].items()
        )
        conditions = data.get("conditions", {})
        glass = data.get("break_glass", {})
        return cls(
            purposes=purposes,
            legal_bases=tuple(
                Choice(code, item["title"], item.get("article", ""))
                for code, item in data["legal_bases"].items()
            ),
            gateways=tuple(gateways.values()),
            conditions=tuple(
                Choice(code, item["title"], _condition_hint(code, item, purposes))
                for code, item in conditions.items()
            ),
            reasons_needed=frozenset(
                code
                for code, item in conditions.items()
                if item.get("requires_reason_without_consent")
            ),
            not_sought_reasons=tuple(
                Choice(code, item["text"].rstrip("."))
                for code, item in data.get("consent_not_sought_reasons", {}).items()
            ),
            break_glass_reasons=tuple(
                Choice(code, item["text"]) for code, item in glass.get("reason_codes", {}).items()
            ),
            break_glass_roles=tuple(glass.get("roles", ())),
            reason_texts=dict(data.get("reason_codes", {})),
        )

    def needs_case_reference(self, code: str) -> bool:
        """Whether policy refuses a query for purpose ``code`` without a case reference
        (the purpose's ``case_reference_required``)."""
        return any(p.code == code and p.case_reference_required for p in self.purposes)

    @property
    def case_reference_hint(self) -> str:
        """The line under the case reference: the purposes that need one."""
        needing = _listed([p.name for p in self.purposes if p.case_reference_required])
        return f"Required for {needing}." if needing else "Optional."

    @classmethod
    def load(cls, settings: PolicySettings | None = None) -> Catalogue:
        """The catalogue of the configured policy bundle. Raises ``PolicyError``."""
        bundle = load_bundle((settings or PolicySettings()).bundle_dirs)
        try:
            return cls.from_data(bundle.data["catalogue"])
        except (KeyError, TypeError) as exc:
            raise PolicyError(f"the policy catalogue is incomplete: missing {exc}") from None


def _condition_hint(code: str, item: Mapping[str, Any], purposes: tuple[PurposeChoice, ...]) -> str:
    """The line under a condition: its article, the purposes it serves, and whether a
    public task needs the reason consent was not sought (policy's
    ``requires_reason_without_consent``)."""
    serves = _listed([p.name for p in purposes if code in p.conditions])
    hint = f"{item['article']}. For {serves or 'no purpose'}."
    if item.get("requires_reason_without_consent"):
        hint += " On a public task, also choose why consent was not sought."
    return hint


def _listed(names: list[str]) -> str:
    """``["a", "b", "c"]`` as "a, b and c"."""
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else "".join(names)
