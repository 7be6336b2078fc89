"""Six agency databases for one town, each with its own ids, table shapes and errors."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa

from connectors.synth._noise import Noise
from connectors.synth._town import Household, Person, Town

__all__ = ["AGENCIES", "AgencyData"]

Row = dict[str, object]


@dataclass(slots=True)
class AgencyData:
    """One agency's database: its schema, its rows, and which true person each record is."""

    name: str
    metadata: sa.MetaData
    rows: dict[str, list[Row]] = field(default_factory=dict)
    truth: dict[str, str] = field(default_factory=dict)


def _age(person: Person, today: dt.date) -> int:
    return (today - person.date_of_birth).days // 365


def _days_ago(rng: random.Random, today: dt.date, most: int) -> dt.date:
    return today - dt.timedelta(days=rng.randint(0, most))


def _stamp(rng: random.Random, today: dt.date) -> dt.datetime:
    day = _days_ago(rng, today, 400)
    return dt.datetime(day.year, day.month, day.day, rng.randint(7, 19), rng.randint(0, 59))  # noqa: DTZ001


def _pnc_id(rng: random.Random) -> str:
    return f"{rng.randint(80, 99)}/{rng.randint(100000, 999999)}{rng.choice('ABCDEFGH')}"


def _relation(of: Person, to: Person) -> str:
    """What ``to`` is to ``of``, from their household roles."""
    adults = {"head", "partner"}
    if of.role in adults and to.role in adults:
        return "partner"
    if of.role in adults and to.role == "child":
        return "child"
    if of.role == "child" and to.role in adults:
        return "parent"
    if of.role == "child" and to.role == "child":
        return "sibling"
    if of.role == "grandparent" and to.role == "child":
        return "grandchild"
    if of.role == "child" and to.role == "grandparent":
        return "grandparent"
    if of.role == "grandparent" and to.role == "head":
        return "child"
    if of.role == "head" and to.role == "grandparent":
        return "parent"
    return "household member"


def education(town: Town, rng: random.Random) -> AgencyData:
    md = sa.MetaData()
    sa.Table(
        "pupils",
        md,
        sa.Column("pupil_id", sa.Integer, primary_key=True),
        sa.Column("upn", sa.String(13), index=True),
        sa.Column("forename", sa.String(60), nullable=False),
        sa.Column("surname", sa.String(60), nullable=False),
        sa.Column("date_of_birth", sa.Date, index=True),
        sa.Column("gender", sa.String(1)),
        sa.Column("postcode", sa.String(8), index=True),
        sa.Column("uprn", sa.String(12)),
        sa.Column("family_id", sa.Integer, index=True),
        sa.Column("year_group", sa.Integer),
        sa.Column("attendance_pct", sa.Numeric(5, 2)),
        sa.Column("sen_status", sa.String(1)),
        sa.Column("fsm_eligible", sa.String(1)),
        sa.Column("updated_at", sa.DateTime),
        sa.Index("ix_pupils_names", "surname", "forename"),
    )
    sa.Table(
        "absence_sessions",
        md,
        sa.Column("session_id", sa.Integer, primary_key=True),
        sa.Column("pupil_id", sa.Integer, index=True),
        sa.Column("session_date", sa.Date),
        sa.Column("reason_code", sa.String(1)),
    )
    sa.Table(
        "exclusions",
        md,
        sa.Column("exclusion_id", sa.Integer, primary_key=True),
        sa.Column("pupil_id", sa.Integer, index=True),
        sa.Column("start_date", sa.Date),
        sa.Column("exclusion_type", sa.String(5)),
        sa.Column("days", sa.Integer),
    )
    data = AgencyData("education", md)
    noise = Noise(rng, rate=0.02)
    pupils: list[Row] = []
    absences: list[Row] = []
    exclusions: list[Row] = []
    today = town.reference_date
    for household in town.households:
        for person in household.members:
            age = _age(person, today)
            if not 4 <= age <= 17 or rng.random() < 0.03:
                continue
            pid = len(pupils) + 1001
            troubled = household.domestic_abuse or household.social_care
            attendance = max(40.0, min(100.0, rng.gauss(88 if troubled else 95, 6)))
            pupils.append(
                {
                    "pupil_id": pid,
                    "upn": person.upn if noise.keep(0.97) else None,
                    "forename": noise.given_name(person),
                    "surname": noise.family_name(person),
                    "date_of_birth": noise.date_of_birth(person),
                    "gender": person.sex,
                    "postcode": noise.postcode(person, household.postcode),
                    "uprn": household.uprn if noise.keep(0.8) else None,
                    "family_id": household.household_id * 7 + 3,
                    "year_group": max(0, age - 4),
                    "attendance_pct": round(attendance, 2),
                    "sen_status": rng.choices("NKE", weights=(82, 14, 4))[0],
                    "fsm_eligible": "Y" if household.out_of_work or rng.random() < 0.1 else "N",
                    "updated_at": _stamp(rng, today),
                }
            )
            data.truth[str(pid)] = person.person_id
            for _ in range(round((100 - attendance) * 3.8)):
                absences.append(
                    {
                        "session_id": len(absences) + 1,
                        "pupil_id": pid,
                        "session_date": _days_ago(rng, today, 500),
                        "reason_code": rng.choices("IMOGN", weights=(50, 10, 25, 8, 7))[0],
                    }
                )
            if troubled and rng.random() < 0.3:
                exclusions.append(
                    {
                        "exclusion_id": len(exclusions) + 1,
                        "pupil_id": pid,
                        "start_date": _days_ago(rng, today, 700),
                        "exclusion_type": "PERM" if rng.random() < 0.05 else "FIXED",
                        "days": rng.randint(1, 5),
                    }
                )
    data.rows = {"pupils": pupils, "absence_sessions": absences, "exclusions": exclusions}
    return data


def police(town: Town, rng: random.Random) -> AgencyData:
    md = sa.MetaData()
    sa.Table(
        "ADDRESS",
        md,
        sa.Column("ADDR_ID", sa.Integer, primary_key=True),
        sa.Column("LINE1", sa.String(100)),
        sa.Column("POST_CD", sa.String(8), index=True),
        sa.Column("UPRN", sa.String(12)),
    )
    sa.Table(
        "PERSON",
        md,
        sa.Column("PERSON_ID", sa.String(10), primary_key=True),
        sa.Column("FIRST_NM", sa.String(60), nullable=False),
        sa.Column("LAST_NM", sa.String(60), nullable=False),
        sa.Column("DOB_TXT", sa.String(10), index=True),
        sa.Column("SEX_CD", sa.String(1)),
        sa.Column("ADDR_ID", sa.Integer, index=True),
        sa.Column("PNC_ID", sa.String(14), index=True),
        sa.Column("LAST_UPD_TS", sa.DateTime),
        sa.Index("IX_PERSON_NAMES", "LAST_NM", "FIRST_NM"),
    )
    sa.Table(
        "INCIDENT",
        md,
        sa.Column("INC_ID", sa.Integer, primary_key=True),
        sa.Column("PERSON_ID", sa.String(10), index=True),
        sa.Column("INC_DT", sa.DateTime),
        sa.Column("INC_TYPE", sa.String(8)),
        sa.Column("ROLE_CD", sa.String(1)),
        sa.Column("STATUS", sa.String(6)),
    )
    data = AgencyData("police", md)
    noise = Noise(rng, rate=0.05)
    addresses: dict[str, int] = {}
    address_rows: list[Row] = []
    people: list[Row] = []
    incidents: list[Row] = []
    today = town.reference_date

    def address_id(household: Household) -> int:
        # One address row per household: members share it, which is the household link.
        key = str(household.household_id)
        if key not in addresses:
            postcode = household.postcode if rng.random() > 0.03 else None
            addresses[key] = len(address_rows) + 1
            address_rows.append(
                {
                    "ADDR_ID": addresses[key],
                    "LINE1": household.address_line.upper(),
                    "POST_CD": postcode.replace(" ", "") if postcode else None,
                    "UPRN": household.uprn if rng.random() < 0.6 else None,
                }
            )
        return addresses[key]

    for household in town.households:
        involved = household.domestic_abuse or rng.random() < 0.06
        if not involved:
            continue
        for person in household.members:
            if _age(person, today) < 10 and not household.domestic_abuse:
                continue
            if rng.random() < 0.2:
                continue
            pid = f"PN{len(people) + 500_001:07d}"
            dob = noise.date_of_birth(person)
            people.append(
                {
                    "PERSON_ID": pid,
                    "FIRST_NM": noise.given_name(person).upper(),
                    "LAST_NM": noise.family_name(person).upper(),
                    "DOB_TXT": dob.strftime("%d/%m/%Y") if dob else None,
                    "SEX_CD": {"M": "1", "F": "2"}[person.sex],
                    "ADDR_ID": address_id(household),
                    "PNC_ID": _pnc_id(rng)
                    if _age(person, today) >= 16 and rng.random() < 0.15
                    else None,
                    "LAST_UPD_TS": _stamp(rng, today),
                }
            )
            data.truth[pid] = person.person_id
            adult = person.role in ("head", "partner")
            n = rng.randint(1, 4) if household.domestic_abuse and adult else rng.randint(0, 2)
            for _ in range(n):
                kind = (
                    "DA"
                    if household.domestic_abuse and rng.random() < 0.7
                    else rng.choice(("ASB", "THEFT", "ASSAULT", "MISPER", "CONCERN"))
                )
                incidents.append(
                    {
                        "INC_ID": len(incidents) + 1,
                        "PERSON_ID": pid,
                        "INC_DT": _stamp(rng, today) - dt.timedelta(days=rng.randint(0, 300)),
                        "INC_TYPE": kind,
                        "ROLE_CD": rng.choice("VSW"),
                        "STATUS": "OPEN" if rng.random() < 0.1 else "CLOSED",
                    }
                )
    data.rows = {"ADDRESS": address_rows, "PERSON": people, "INCIDENT": incidents}
    return data


def health(town: Town, rng: random.Random) -> AgencyData:
    md = sa.MetaData()
    sa.Table(
        "patient",
        md,
        sa.Column("patient_id", sa.Integer, primary_key=True),
        sa.Column("nhs_no", sa.String(10), index=True),
        sa.Column("given_name", sa.String(60), nullable=False),
        sa.Column("family_name", sa.String(60), nullable=False),
        sa.Column("date_of_birth", sa.Date, index=True),
        sa.Column("sex", sa.String(1)),
        sa.Column("postcode", sa.String(8), index=True),
        sa.Column("uprn", sa.String(12)),
        sa.Column("practice_code", sa.String(6)),
        sa.Column("safeguarding_alert", sa.String(1)),
        sa.Column("last_updated", sa.DateTime),
        sa.Index("ix_patient_names", "family_name", "given_name"),
    )
    sa.Table(
        "patient_relationship",
        md,
        sa.Column("patient_id", sa.Integer, index=True),
        sa.Column("related_patient_id", sa.Integer),
        sa.Column("relationship", sa.String(20)),
    )
    sa.Table(
        "consultation",
        md,
        sa.Column("consultation_id", sa.Integer, primary_key=True),
        sa.Column("patient_id", sa.Integer, index=True),
        sa.Column("consult_date", sa.Date),
        sa.Column("consult_type", sa.String(3)),
    )
    data = AgencyData("health", md)
    noise = Noise(rng, rate=0.015)
    patients: list[Row] = []
    links: list[Row] = []
    consultations: list[Row] = []
    today = town.reference_date
    practices = ("N81001", "N81002", "N81007", "N81013", "N81022")
    for household in town.households:
        ids: dict[str, tuple[int, Person]] = {}
        for person in household.members:
            if rng.random() < 0.08:
                continue
            pid = len(patients) + 70_001
            ids[person.person_id] = (pid, person)
            patients.append(
                {
                    "patient_id": pid,
                    "nhs_no": person.nhs_number if noise.keep(0.98) else None,
                    "given_name": noise.given_name(person),
                    "family_name": noise.family_name(person),
                    "date_of_birth": noise.date_of_birth(person),
                    "sex": person.sex,
                    "postcode": noise.postcode(person, household.postcode),
                    "uprn": household.uprn if noise.keep(0.9) else None,
                    "practice_code": rng.choice(practices),
                    "safeguarding_alert": "Y"
                    if household.social_care and rng.random() < 0.5
                    else "N",
                    "last_updated": _stamp(rng, today),
                }
            )
            data.truth[str(pid)] = person.person_id
            mental = household.domestic_abuse or rng.random() < 0.08
            for _ in range(rng.randint(0, 9)):
                consultations.append(
                    {
                        "consultation_id": len(consultations) + 1,
                        "patient_id": pid,
                        "consult_date": _days_ago(rng, today, 730),
                        "consult_type": rng.choices(
                            ("GP", "AE", "MH", "HV", "SM"),
                            weights=(70, 12, 12 if mental else 1, 6, 2 if mental else 0.2),
                        )[0],
                    }
                )
        for pid, person in ids.values():
            for other_id, other in ids.values():
                if other_id != pid:
                    links.append(
                        {
                            "patient_id": pid,
                            "related_patient_id": other_id,
                            "relationship": _relation(person, other),
                        }
                    )
    data.rows = {"patient": patients, "patient_relationship": links, "consultation": consultations}
    return data


def housing(town: Town, rng: random.Random) -> AgencyData:
    md = sa.MetaData()
    sa.Table(
        "tenancies",
        md,
        sa.Column("tenancy_ref", sa.String(12), primary_key=True),
        sa.Column("uprn", sa.String(12)),
        sa.Column("address_line", sa.String(100)),
        sa.Column("postcode", sa.String(8), index=True),
        sa.Column("start_date", sa.Date),
    )
    sa.Table(
        "tenants",
        md,
        sa.Column("tenant_ref", sa.String(10), primary_key=True),
        sa.Column("first_name", sa.String(60), nullable=False),
        sa.Column("last_name", sa.String(60), nullable=False),
        sa.Column("birth_date", sa.String(8), index=True),
        sa.Column("ni_number", sa.String(9), index=True),
        sa.Column("tenancy_ref", sa.String(12), index=True),
        sa.Column("role", sa.String(20)),
        sa.Column("tenancy_start", sa.Date),
        sa.Column("refuge_flag", sa.String(1)),
        sa.Column("updated", sa.Date),
        sa.Index("ix_tenants_names", "last_name", "first_name"),
    )
    sa.Table(
        "rent_accounts",
        md,
        sa.Column("account_id", sa.Integer, primary_key=True),
        sa.Column("tenant_ref", sa.String(10), index=True),
        sa.Column("balance_pence", sa.Integer),
        sa.Column("balance_date", sa.Date),
        sa.Column("nosp_served", sa.String(1)),
    )
    data = AgencyData("housing", md)
    noise = Noise(rng, rate=0.03)
    tenancies: list[Row] = []
    tenants: list[Row] = []
    accounts: list[Row] = []
    today = town.reference_date
    for household in town.households:
        if not household.social_tenant:
            continue
        ref = f"TEN{household.household_id:08d}"
        start = _days_ago(rng, today, 5000)
        tenancies.append(
            {
                "tenancy_ref": ref,
                "uprn": household.uprn,
                "address_line": household.address_line,
                "postcode": household.postcode if rng.random() > 0.01 else None,
                "start_date": start,
            }
        )
        for person in household.members:
            if rng.random() < 0.05:
                continue
            tid = f"T-{len(tenants) + 1:07d}"
            dob = noise.date_of_birth(person)
            lead = person.role == "head"
            tenants.append(
                {
                    "tenant_ref": tid,
                    "first_name": noise.given_name(person),
                    "last_name": noise.family_name(person),
                    "birth_date": dob.strftime("%Y%m%d") if dob else None,
                    "ni_number": person.ni_number if person.ni_number and noise.keep(0.6) else None,
                    "tenancy_ref": ref,
                    "role": "lead tenant"
                    if lead
                    else ("joint tenant" if person.role == "partner" else "household member"),
                    "tenancy_start": start,
                    "refuge_flag": "Y" if household.domestic_abuse and rng.random() < 0.2 else "N",
                    "updated": _days_ago(rng, today, 200),
                }
            )
            data.truth[tid] = person.person_id
            if lead:
                arrears = rng.random() < (0.45 if household.out_of_work else 0.15)
                accounts.append(
                    {
                        "account_id": len(accounts) + 1,
                        "tenant_ref": tid,
                        "balance_pence": rng.randint(5_000, 350_000) if arrears else 0,
                        "balance_date": _days_ago(rng, today, 30),
                        "nosp_served": "Y" if arrears and rng.random() < 0.2 else "N",
                    }
                )
    data.rows = {"tenancies": tenancies, "tenants": tenants, "rent_accounts": accounts}
    return data


def social_care(town: Town, rng: random.Random) -> AgencyData:
    md = sa.MetaData()
    sa.Table(
        "csc_person",
        md,
        sa.Column("PERSON_ID", sa.Integer, primary_key=True),
        sa.Column("FORENAME", sa.String(60), nullable=False),
        sa.Column("SURNAME", sa.String(60), nullable=False),
        sa.Column("DOB", sa.Date, index=True),
        sa.Column("GENDER", sa.String(1)),
        sa.Column("NHS_NUMBER", sa.String(10), index=True),
        sa.Column("UPN", sa.String(13), index=True),
        sa.Column("POSTCODE", sa.String(8), index=True),
        sa.Column("FAMILY_CASE_ID", sa.Integer, index=True),
        sa.Column("ROLE", sa.String(12)),
        sa.Column("ADOPTION_SEALED", sa.String(1)),
        sa.Column("LAST_UPDATED", sa.DateTime),
        sa.Index("ix_csc_person_names", "SURNAME", "FORENAME"),
    )
    sa.Table(
        "episodes",
        md,
        sa.Column("EPISODE_ID", sa.Integer, primary_key=True),
        sa.Column("PERSON_ID", sa.Integer, index=True),
        sa.Column("EPISODE_TYPE", sa.String(3)),
        sa.Column("START_DATE", sa.Date),
        sa.Column("END_DATE", sa.Date),
    )
    data = AgencyData("social_care", md)
    noise = Noise(rng, rate=0.03)
    people: list[Row] = []
    episodes: list[Row] = []
    today = town.reference_date
    for household in town.households:
        if not household.social_care:
            continue
        case_id = 40_000 + household.household_id
        for person in household.members:
            child = person.role == "child"
            pid = len(people) + 9_000_001
            people.append(
                {
                    "PERSON_ID": pid,
                    "FORENAME": noise.given_name(person),
                    "SURNAME": noise.family_name(person),
                    "DOB": noise.date_of_birth(person),
                    "GENDER": {"M": "1", "F": "2"}[person.sex] if noise.keep(0.97) else "9",
                    "NHS_NUMBER": person.nhs_number if noise.keep(0.6) else None,
                    "UPN": person.upn if person.upn and noise.keep(0.5) else None,
                    "POSTCODE": noise.postcode(person, household.postcode),
                    "FAMILY_CASE_ID": case_id,
                    "ROLE": "child"
                    if child
                    else ("carer" if person.role != "other adult" else "other"),
                    "ADOPTION_SEALED": "Y" if child and rng.random() < 0.01 else "N",
                    "LAST_UPDATED": _stamp(rng, today),
                }
            )
            data.truth[str(pid)] = person.person_id
            if child:
                kind = rng.choices(("EH", "CIN", "CP", "LAC"), weights=(35, 35, 20, 10))[0]
                start = _days_ago(rng, today, 900)
                ended = rng.random() < 0.35
                episodes.append(
                    {
                        "EPISODE_ID": len(episodes) + 1,
                        "PERSON_ID": pid,
                        "EPISODE_TYPE": kind,
                        "START_DATE": start,
                        "END_DATE": start + dt.timedelta(days=rng.randint(30, 300))
                        if ended
                        else None,
                    }
                )
    data.rows = {"csc_person": people, "episodes": episodes}
    return data


def benefits(town: Town, rng: random.Random) -> AgencyData:
    md = sa.MetaData()
    sa.Table(
        "claimant",
        md,
        sa.Column("claimant_id", sa.String(10), primary_key=True),
        sa.Column("nino", sa.String(9), index=True),
        sa.Column("first_name", sa.String(60), nullable=False),
        sa.Column("surname", sa.String(60), nullable=False),
        sa.Column("dob", sa.Date, index=True),
        sa.Column("sex", sa.String(1)),
        sa.Column("postcode", sa.String(8), index=True),
        sa.Column("claim_id", sa.String(10), index=True),
        sa.Column("claim_role", sa.String(10)),
        sa.Column("updated_on", sa.Date),
        sa.Index("ix_claimant_names", "surname", "first_name"),
    )
    sa.Table(
        "awards",
        md,
        sa.Column("award_id", sa.Integer, primary_key=True),
        sa.Column("claimant_id", sa.String(10), index=True),
        sa.Column("benefit", sa.String(4)),
        sa.Column("out_of_work", sa.String(1)),
        sa.Column("start_date", sa.Date),
        sa.Column("end_date", sa.Date),
        sa.Column("weekly_pence", sa.Integer),
    )
    sa.Table(
        "sanctions",
        md,
        sa.Column("sanction_id", sa.Integer, primary_key=True),
        sa.Column("claimant_id", sa.String(10), index=True),
        sa.Column("sanction_date", sa.Date),
    )
    data = AgencyData("benefits", md)
    noise = Noise(rng, rate=0.02)
    claimants: list[Row] = []
    awards: list[Row] = []
    sanctions: list[Row] = []
    today = town.reference_date
    for household in town.households:
        if not (household.out_of_work or rng.random() < 0.12):
            continue
        claim = f"CL{household.household_id:08d}"
        for person in household.members:
            role = {"head": "claimant", "partner": "partner", "child": "dependant"}.get(person.role)
            if role is None:
                continue
            cid = f"C{len(claimants) + 1:08d}"
            claimants.append(
                {
                    "claimant_id": cid,
                    "nino": person.ni_number if person.ni_number and noise.keep(0.95) else None,
                    "first_name": noise.given_name(person),
                    "surname": noise.family_name(person),
                    "dob": noise.date_of_birth(person),
                    "sex": person.sex,
                    "postcode": noise.postcode(person, household.postcode),
                    "claim_id": claim,
                    "claim_role": role,
                    "updated_on": _days_ago(rng, today, 120),
                }
            )
            data.truth[cid] = person.person_id
            if role == "claimant":
                benefit = rng.choice(("UC", "UC", "JSA", "ESA")) if household.out_of_work else "UC"
                awards.append(
                    {
                        "award_id": len(awards) + 1,
                        "claimant_id": cid,
                        "benefit": benefit,
                        "out_of_work": "Y" if household.out_of_work else "N",
                        "start_date": _days_ago(rng, today, 1500),
                        "end_date": None if rng.random() < 0.85 else _days_ago(rng, today, 60),
                        "weekly_pence": rng.randint(8_000, 40_000),
                    }
                )
                for _ in range(rng.choices((0, 1, 2), weights=(85, 10, 5))[0]):
                    sanctions.append(
                        {
                            "sanction_id": len(sanctions) + 1,
                            "claimant_id": cid,
                            "sanction_date": _days_ago(rng, today, 700),
                        }
                    )
            if role != "dependant" and rng.random() < 0.08:
                awards.append(
                    {
                        "award_id": len(awards) + 1,
                        "claimant_id": cid,
                        "benefit": "PIP",
                        "out_of_work": "N",
                        "start_date": _days_ago(rng, today, 2000),
                        "end_date": None,
                        "weekly_pence": rng.randint(3_000, 18_000),
                    }
                )
    data.rows = {"claimant": claimants, "awards": awards, "sanctions": sanctions}
    return data


AGENCIES: dict[str, Callable[[Town, random.Random], AgencyData]] = {
    "education": education,
    "police": police,
    "health": health,
    "housing": housing,
    "social_care": social_care,
    "benefits": benefits,
}
