"""An independent statement of the family-query rules in plain Python.

Written from the rules in the policy guide, not from the Rego, so that the property test
comparing the two catches a rule either of them gets wrong.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

ORDINARY = "ordinary"
CONSENT_PRECEDENCE = ["withdrawn", "refused", "given", "expired"]
PAIR_PRIORITY = [
    "agency_type_not_in_purpose",
    "agreement_suspended",
    "agreement_not_yet_in_force",
    "agreement_expired",
    "no_active_agreement",
    "consent_withdrawn",
    "consent_refused",
    "consent_expired",
    "consent_not_sought",
    "consent_withdrawn_no_override",
    "consent_refused_no_override",
]
# Why no agreement covers an exchange, most helpful first.
AGREEMENT_GAPS = [
    "agreement_suspended",
    "agreement_not_yet_in_force",
    "agreement_expired",
    "no_active_agreement",
]


def _t(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _blank(value: Any) -> bool:
    return not isinstance(value, str) or not value.strip()


class Oracle:
    def __init__(self, catalogue: dict[str, Any]) -> None:
        self.c = catalogue

    def reason(self, code: str) -> dict[str, str]:
        return {"code": code, "text": self.c["reason_codes"].get(code, code)}

    def obligation(self, code: str) -> dict[str, str]:
        return {"code": code, "text": self.c["obligations"][code]["text"]}

    def decide(self, doc: dict[str, Any]) -> dict[str, Any]:
        req = doc["request"]
        purpose = self.c["purposes"].get(req["purpose"])
        now = _t(req["time"])
        glass = req.get("break_glass")
        bg = self.c["break_glass"]
        denials: set[str] = set()
        if purpose is None:
            denials.add("unknown_purpose")
        if glass is None and (purpose is None or req["requester"]["role"] not in purpose["roles"]):
            denials.add("role_not_permitted")
        basis = req["legal_basis"]
        gateway = req.get("gateway")
        if basis not in ("consent", "public_task"):
            denials.add("legal_basis_unknown")
        if basis == "public_task" and _blank(gateway):
            denials.add("gateway_required")
        if basis == "public_task" and not _blank(gateway) and gateway not in self.c["gateways"]:
            denials.add("gateway_unknown")
        basis_id = "consent" if basis == "consent" else gateway
        basis_valid = basis == "consent" or (
            basis == "public_task" and gateway in self.c["gateways"]
        )
        if purpose is not None and basis_valid and basis_id not in purpose["legal_bases"]:
            denials.add("legal_basis_not_for_purpose")
        if (
            purpose is not None
            and purpose["case_reference_required"]
            and _blank(req.get("case_reference"))
        ):
            denials.add("case_reference_required")
        if _blank(req.get("justification")):
            denials.add("justification_required")
        if glass is not None:
            if req["requester"]["role"] not in bg["roles"]:
                denials.add("break_glass_role_not_permitted")
            if glass["reason_code"] not in bg["reason_codes"]:
                denials.add("break_glass_reason_code_unknown")
            if _blank(glass["text"]):
                denials.add("break_glass_text_required")
            if now - _t(glass["started_at"]) >= timedelta(minutes=bg["time_limit_minutes"]):
                denials.add("break_glass_expired")
        allow = not denials
        bg_obligations = [
            self.obligation("alert_ig_immediately"),
            self.obligation("retrospective_review"),
        ]
        submit = {
            "allow": allow,
            "reasons": (
                [self.reason(c) for c in sorted(denials)]
                if not allow
                else [self.reason("request_permitted")]
                + ([self.reason("break_glass_in_force")] if glass else [])
            ),
            "obligations": bg_obligations if allow and glass else [],
        }
        exchanges = []
        for provider in doc["providers"]:
            for person in provider["persons"]:
                if not allow:
                    exchanges.append(
                        self._refused(
                            provider, person, ["request_refused"], "request_refused", None, purpose
                        )
                    )
                else:
                    exchanges.append(
                        self._pair(req, purpose, provider, person, now, basis_id, bg_obligations)
                    )
        return {"submit": submit, "exchanges": exchanges}

    def _refused(self, provider, person, codes, lead, agreement, purpose):  # type: ignore[no-untyped-def]  # noqa: PLR0917
        return {
            "agency_id": provider["agency_id"],
            "person_ref": person["ref"],
            "allow": False,
            "tier": "none",
            "permitted_fields": [],
            "withheld": [
                {"field": f, "code": lead, "text": self.c["reason_codes"][lead]}
                for f in sorted(set(provider["requested_fields"]))
            ],
            "obligations": [],
            "reasons": [self.reason(c) for c in codes],
            "agreement": agreement,
            "retention_days": purpose.get("retention_days", 0) if purpose else 0,
        }

    def _agreement(self, req, provider, now, basis_id):  # type: ignore[no-untyped-def]
        """The agreement relied on and None, or None and the code saying why there is none."""
        fitting = [
            a
            for a in provider["agreements"]
            if req["requester"]["agency_id"] in a["parties"]
            and provider["agency_id"] in a["parties"]
            and req["purpose"] in a["purposes"]
            and basis_id in a["legal_bases"]
        ]
        gaps = {"no_active_agreement"}
        covering = []
        for a in fitting:
            if a["status"] not in ("active", "suspended"):
                continue
            if a["valid_to"] is not None and _t(a["valid_to"]) <= now:
                gaps.add("agreement_expired")
            elif _t(a["valid_from"]) > now:
                gaps.add("agreement_not_yet_in_force")
            elif a["status"] == "suspended":
                gaps.add("agreement_suspended")
            else:
                covering.append(a)
        if not covering:
            return None, next(c for c in AGREEMENT_GAPS if c in gaps)
        return min(covering, key=lambda a: (a["id"], -a["version"])), None

    def _consent_state(self, req, provider, person, now):  # type: ignore[no-untyped-def]
        states = set()
        for record in person["consents"]:
            if record["purpose"] != req["purpose"] or record["agency_id"] != provider["agency_id"]:
                continue
            state = record["state"]
            if (
                state == "given"
                and record["expires_at"] is not None
                and _t(record["expires_at"]) <= now
            ):
                state = "expired"
            states.add(state)
        return next((s for s in CONSENT_PRECEDENCE if s in states), "not_sought")

    def _condition_verdict(self, req, purpose, kind):  # type: ignore[no-untyped-def]
        claimed = [
            c
            for c in req.get("conditions", [])
            if c in self.c["conditions"]
            and self.c["conditions"][c]["kind"] == kind
            and c in purpose["conditions"]
        ]
        reason_given = req.get("consent_not_sought_reason") in self.c["consent_not_sought_reasons"]
        for c in claimed:
            if (
                not self.c["conditions"][c]["requires_reason_without_consent"]
                or req["legal_basis"] == "consent"
                or reason_given
            ):
                return "ok"
        if claimed:
            return "consent_not_sought_reason_missing"
        return (
            "special_category_no_condition"
            if kind == "special_category"
            else "offence_data_no_condition"
        )

    def _pair(self, req, purpose, provider, person, now, basis_id, bg_obligations):  # type: ignore[no-untyped-def]  # noqa: PLR0917
        glass = req.get("break_glass") is not None
        agreement, gap = (None, None) if glass else self._agreement(req, provider, now, basis_id)
        ref = {"id": agreement["id"], "version": agreement["version"]} if agreement else None
        state = self._consent_state(req, provider, person, now)
        denials = set()
        if provider["agency_type"] not in purpose["field_allow"]:
            denials.add("agency_type_not_in_purpose")
        if gap is not None:
            denials.add(gap)
        override = not _blank(req.get("override_reason")) or glass
        if req["legal_basis"] == "consent" and state != "given":
            denials.add(f"consent_{state}")
        elif (
            req["legal_basis"] == "public_task"
            and state in ("refused", "withdrawn")
            and not override
        ):
            denials.add(f"consent_{state}_no_override")
        if denials:
            lead = next(c for c in PAIR_PRIORITY if c in denials)
            return self._refused(provider, person, sorted(denials), lead, ref, purpose)
        overridden = req["legal_basis"] == "public_task" and state in ("refused", "withdrawn")
        requested = sorted(set(provider["requested_fields"]))
        tier = purpose["tiers"].get(provider["agency_type"], "full")
        codes = {}
        offered = {f["name"]: f["sensitivity"] for f in provider["fields"]}
        allow_list = purpose["field_allow"][provider["agency_type"]]
        for f in requested:
            if tier == "known_to_service":
                codes[f] = "known_to_service_only"
            elif f not in offered:
                codes[f] = "field_not_offered"
            elif f not in allow_list:
                codes[f] = "not_in_purpose"
            elif glass and f not in self.c["break_glass"]["fields"]:
                codes[f] = "break_glass_reduced_set"
            elif not glass and f not in agreement["fields"]:
                codes[f] = "not_in_agreement"
            elif (
                offered[f] != ORDINARY and self._condition_verdict(req, purpose, offered[f]) != "ok"
            ):
                codes[f] = self._condition_verdict(req, purpose, offered[f])
            elif f in person["restricted_fields"]:
                codes[f] = "restricted_by_person"
            else:
                codes[f] = "released"
        permitted = [f for f in requested if codes[f] == "released"]
        allow = tier == "known_to_service" or bool(permitted)
        reasons: list[str] = []
        obligations = []
        if allow:
            reasons.append(
                "basis_consent_given"
                if req["legal_basis"] == "consent"
                else "basis_statutory_gateway"
            )
            reasons.append("break_glass_in_force" if glass else "agreement_in_force")
            if overridden:
                reasons.append("consent_override_recorded")
            if tier == "known_to_service":
                reasons.append("known_to_service_only")
            obligations = (bg_obligations if glass else []) + (
                [self.obligation("record_consent_override")] if overridden else []
            )
        else:
            reasons = ["no_fields_permitted"]
        return {
            "agency_id": provider["agency_id"],
            "person_ref": person["ref"],
            "allow": allow,
            "tier": tier,
            "permitted_fields": permitted,
            "withheld": [
                {"field": f, "code": codes[f], "text": self.c["reason_codes"][codes[f]]}
                for f in requested
                if codes[f] != "released"
            ],
            "obligations": obligations,
            "reasons": [self.reason(c) for c in reasons],
            "agreement": ref,
            "retention_days": purpose["retention_days"],
        }
