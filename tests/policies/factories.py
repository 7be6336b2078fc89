"""Small builders for policy tests: a copy of the shipped bundle to edit, a typed query."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from policies.model import FamilyQueryInput
from policies.settings import DEFAULT_BUNDLE_DIR


def copy_bundle(target: Path) -> Path:
    """A private copy of the shipped bundle (rego/ and data/) that a test may change."""
    shutil.copytree(DEFAULT_BUNDLE_DIR / "rego", target / "rego")
    shutil.copytree(DEFAULT_BUNDLE_DIR / "data", target / "data")
    return target


def family_query(**request: Any) -> FamilyQueryInput:
    """A child protection enquiry about two people held by one school, allowed as is."""
    doc: dict[str, Any] = {
        "request": {
            "requester": {
                "agency_id": "la-csc",
                "agency_type": "childrens_social_care",
                "role": "social_worker",
            },
            "purpose": "child_protection_enquiry",
            "legal_basis": "public_task",
            "gateway": "ca1989_s47",
            "case_reference": "CP-2026-0042",
            "justification": "Bruising reported by school.",
            "conditions": ["art9_2_g_para18"],
            "consent_not_sought_reason": "would_prejudice_protection",
            "time": "2026-06-01T10:00:00Z",
        },
        "providers": [
            {
                "agency_id": "school-1",
                "agency_type": "school",
                "agreements": [
                    {
                        "id": "dsa-school-csc",
                        "version": 2,
                        "parties": ["la-csc", "school-1"],
                        "purposes": ["child_protection_enquiry"],
                        "legal_bases": ["ca1989_s47"],
                        "fields": ["education.attendance_rate", "education.sen_status"],
                        "valid_from": "2025-01-01T00:00:00Z",
                        "status": "active",
                    }
                ],
                "fields": [
                    {"name": "education.attendance_rate"},
                    {"name": "education.sen_status", "sensitivity": "special_category"},
                ],
                "requested_fields": ["education.attendance_rate", "education.sen_status"],
                "persons": [
                    {"ref": "child-1"},
                    {"ref": "adult-1", "restricted_fields": ["education.sen_status"]},
                ],
            }
        ],
    }
    doc["request"].update(request)
    return FamilyQueryInput.model_validate(doc)
