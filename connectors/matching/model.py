"""The Fellegi-Sunter match model: learned m and u probabilities, applied per request.

``train.py`` fits the parameters with Splink on a synthetic town and writes them to
``params.json``; this module reads them and scores a pair from its comparison levels,
with no dependency on Splink at request time.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from connectors.errors import MappingError
from connectors.matching.compare import NULL

__all__ = ["DEFAULT_PARAMS", "MatchModel", "Score"]

DEFAULT_PARAMS = "params.json"
# A probability never reaches 0 or 1 in a learned model; clamping keeps logs finite.
_FLOOR = 1e-6


@dataclass(frozen=True, slots=True)
class Score:
    match_weight: float
    probability: float


@dataclass(frozen=True, slots=True)
class MatchModel:
    """Prior odds, per-level log2 Bayes factors, and the acceptance threshold."""

    prior_weight: float
    bayes_factors: dict[str, dict[str, float]]
    threshold: float

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MatchModel:
        """Raises ``MappingError`` when the parameters are not of the expected shape."""
        try:
            prior = float(data["probability_two_random_records_match"])
            factors = {
                comparison: {
                    level: math.log2(max(float(p["m"]), _FLOOR) / max(float(p["u"]), _FLOOR))
                    for level, p in levels.items()
                }
                for comparison, levels in data["comparisons"].items()
            }
            threshold = float(data["threshold"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MappingError(f"match parameters are malformed: {exc}") from None
        return cls(
            prior_weight=math.log2(prior / (1 - prior)),
            bayes_factors=factors,
            threshold=threshold,
        )

    @classmethod
    def load(cls, path: Path | None = None) -> MatchModel:
        """Read parameters from ``path``, or the ones shipped with Junction.

        Raises:
            MappingError: the file cannot be read or is malformed.
        """
        try:
            if path is None:
                text = resources.files("connectors.matching").joinpath(DEFAULT_PARAMS).read_text()
            else:
                text = path.read_text(encoding="utf-8")
            data = json.loads(text)
        except (OSError, json.JSONDecodeError) as exc:
            raise MappingError(
                f"cannot read match parameters {path or DEFAULT_PARAMS}: {exc}"
            ) from None
        return cls.from_dict(data)

    def score(self, levels: dict[str, str]) -> Score:
        """Match weight (log2 odds) and probability of a pair with these levels."""
        weight = self.prior_weight
        for comparison, level in levels.items():
            if level == NULL:
                continue
            weight += self.bayes_factors.get(comparison, {}).get(level, 0.0)
        probability = 1.0 / (1.0 + 2.0 ** (-weight)) if weight > -1000 else 0.0
        return Score(match_weight=round(weight, 3), probability=probability)
