"""Fit the match model's m and u probabilities with Splink on a synthetic town.

Run ``python -m connectors.matching.train --people 20000 --out connectors/matching/params.json``
(needs the ``training`` extra: ``pip install -e '.[training]'``). It generates a town,
reads every agency's records through the shipped mapping files (so the training sees
records exactly as the connectors do), and links the true people to them with Splink:
u from random sampling, m from the town's ground truth as labels, and the prior from
deterministic rules. The comparison levels are the ones ``compare.py`` applies at
request time, written here as Splink SQL.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
from pathlib import Path
from typing import Any

from connectors.mapping import load_mapping
from connectors.matching.compare import COMPARISONS, JW_HIGH, JW_MID, normalise_name
from connectors.matching.nicknames import formal_names
from connectors.sources import SourceRecord, SqlSource, normalise_postcode
from connectors.synth import load_truth, synthesise

__all__ = ["main", "train"]

AGENCY_FILES = Path(__file__).resolve().parent.parent / "agencies"
IDENTIFIERS = ("nhs_number", "ni_number", "upn")
# A level never seen among true matches of a synthetic town (a wholly different given
# name, a wrong sex) still happens in real records; flooring m keeps its penalty finite.
M_FLOOR = 1e-3


def _null(column: str) -> dict[str, Any]:
    return {
        "sql_condition": f"{column}_l IS NULL OR {column}_r IS NULL",
        "is_null_level": True,
        "label_for_charts": "null",
    }


def _level(label: str, sql: str) -> dict[str, Any]:
    return {"sql_condition": sql, "label_for_charts": label}


def _names(column: str, nickname: bool) -> dict[str, Any]:
    jw = f"jaro_winkler_similarity({column}_l, {column}_r)"
    levels = [_null(column), _level("exact", f"{column}_l = {column}_r")]
    if nickname:
        levels.append(_level("nickname", "len(list_intersect(formals_l, formals_r)) > 0"))
    levels += [_level("jw_high", f"{jw} >= {JW_HIGH}"), _level("jw_mid", f"{jw} >= {JW_MID}")]
    if nickname:
        levels.append(_level("initial", f"substr({column}_l, 1, 1) = substr({column}_r, 1, 1)"))
    levels.append(_level("different", "ELSE"))
    return {"output_column_name": column, "comparison_levels": levels}


def _settings() -> dict[str, Any]:
    same = (
        "(CAST(year(date_of_birth_l) = year(date_of_birth_r) AS INT) + "
        "CAST(month(date_of_birth_l) = month(date_of_birth_r) AS INT) + "
        "CAST(day(date_of_birth_l) = day(date_of_birth_r) AS INT))"
    )
    no_identifier = " AND ".join(f"({c}_l IS NULL OR {c}_r IS NULL)" for c in IDENTIFIERS)
    any_identifier = " OR ".join(f"{c}_l = {c}_r" for c in IDENTIFIERS)
    comparisons = [
        _names("given_name", nickname=True),
        _names("family_name", nickname=False),
        {
            "output_column_name": "date_of_birth",
            "comparison_levels": [
                _null("date_of_birth"),
                _level("exact", "date_of_birth_l = date_of_birth_r"),
                _level(
                    "day_month_swap",
                    "year(date_of_birth_l) = year(date_of_birth_r) AND "
                    "month(date_of_birth_l) = day(date_of_birth_r) AND "
                    "day(date_of_birth_l) = month(date_of_birth_r)",
                ),
                _level("two_parts", f"{same} >= 2"),
                _level("different", "ELSE"),
            ],
        },
        {
            "output_column_name": "postcode",
            "comparison_levels": [
                _null("postcode"),
                _level("exact", "postcode_l = postcode_r"),
                _level("sector", "postcode_sector_l = postcode_sector_r"),
                _level("district", "postcode_district_l = postcode_district_r"),
                _level("different", "ELSE"),
            ],
        },
        {
            "output_column_name": "sex",
            "comparison_levels": [
                _null("sex"),
                _level("exact", "sex_l = sex_r"),
                _level("different", "ELSE"),
            ],
        },
        {
            "output_column_name": "identifier",
            "comparison_levels": [
                {"sql_condition": no_identifier, "is_null_level": True, "label_for_charts": "null"},
                _level("exact", any_identifier),
                _level("different", "ELSE"),
            ],
        },
    ]
    return {
        "link_type": "link_only",
        "unique_id_column_name": "uid",
        "comparisons": comparisons,
        "blocking_rules_to_generate_predictions": [],
    }


def _row(uid: str, label: str | None, record: SourceRecord) -> dict[str, Any]:
    given = normalise_name(record.given_name)
    code = normalise_postcode(record.postcode)
    return {
        "uid": uid,
        "person_id": label,
        "given_name": given,
        "formals": sorted(formal_names(given)) if given else [],
        "family_name": normalise_name(record.family_name),
        "date_of_birth": record.date_of_birth,
        "postcode": code,
        "postcode_sector": code[:-2] if code else None,
        "postcode_district": code.split(" ")[0] if code else None,
        "sex": record.sex if record.sex in ("F", "M") else None,
        **{name: record.identifiers.get(name) for name in IDENTIFIERS},
    }


def _frames(town: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    truth = load_truth(town / "truth.json")
    people: list[dict[str, Any]] = truth["people"]  # type: ignore[assignment]
    agencies: dict[str, dict[str, str]] = truth["agencies"]  # type: ignore[assignment]
    left = [
        _row(
            f"t:{p['person_id']}",
            p["person_id"],
            SourceRecord(
                key=p["person_id"],
                given_name=p["given_name"],
                family_name=p["family_name"],
                date_of_birth=dt.date.fromisoformat(p["date_of_birth"]),
                sex=p["sex"],
                postcode=p["postcode"],
                identifiers={n: p[n] for n in IDENTIFIERS if p.get(n)},
            ),
        )
        for p in people
    ]
    right = []
    for path in sorted(AGENCY_FILES.glob("*.yaml")):
        mapping = load_mapping(path, environ={"JUNCTION_TOWN_DIR": str(town)})
        agency = path.stem
        source = SqlSource(mapping)
        try:
            for record in source.iter_records():
                label = agencies[agency].get(record.key)
                right.append(_row(f"{agency}:{record.key}", label, record))
        finally:
            source.close()
    return left, right


def train(people: int, *, seed: int, threshold: float) -> dict[str, Any]:
    """Fit the model on a fresh synthetic town; return the parameters to ship."""
    import duckdb
    import pyarrow as pa
    from splink import DuckDBAPI, Linker, block_on

    with tempfile.TemporaryDirectory() as directory:
        town = Path(directory)
        synthesise(people, town, seed=seed, reference_date=dt.date(2026, 1, 1))
        left, right = _frames(town)
    connection = duckdb.connect()
    left_table, right_table = pa.Table.from_pylist(left), pa.Table.from_pylist(right)
    connection.register("subjects_arrow", left_table)
    connection.register("records_arrow", right_table)
    connection.execute("CREATE TABLE subjects AS SELECT * FROM subjects_arrow")
    connection.execute("CREATE TABLE records AS SELECT * FROM records_arrow")
    db_api = DuckDBAPI(connection=connection)
    subjects = db_api.register("subjects", dataset_display_name="subjects_in")
    records = db_api.register("records", dataset_display_name="records_in")
    linker = Linker([subjects, records], _settings())
    linker.training.estimate_probability_two_random_records_match(
        [
            block_on("given_name", "family_name", "date_of_birth"),
            block_on("family_name", "date_of_birth", "postcode"),
        ],
        recall=0.8,
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=3e6, seed=seed)
    linker.training.estimate_m_from_label_column("person_id")
    model = linker.misc.save_model_to_json()
    comparisons: dict[str, dict[str, dict[str, float]]] = {}
    for comparison in model["comparisons"]:
        name = comparison["output_column_name"]
        levels = {}
        for level in comparison["comparison_levels"]:
            if level.get("is_null_level"):
                continue
            levels[level["label_for_charts"]] = {
                "m": max(float(level.get("m_probability") or 0.0), M_FLOOR),
                "u": float(level.get("u_probability") or 1e-6),
            }
        comparisons[name] = levels
    for name, expected in COMPARISONS.items():
        if tuple(comparisons[name]) != expected:
            raise RuntimeError(f"Splink levels of {name} differ from compare.py")
    return {
        "probability_two_random_records_match": model["probability_two_random_records_match"],
        "threshold": threshold,
        "comparisons": comparisons,
        "trained_on": {
            "people": people,
            "seed": seed,
            "agency_records": len(right),
            "method": "splink: u by random sampling, m from ground-truth labels",
        },
    }


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("params.json"))
    arguments = parser.parse_args()
    params = train(arguments.people, seed=arguments.seed, threshold=arguments.threshold)
    arguments.out.write_text(json.dumps(params, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
