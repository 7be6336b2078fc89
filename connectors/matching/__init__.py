"""Local matching: identifier match, Fellegi-Sunter scoring, linkage tokens, references.

``Matcher(source, model=MatchModel.load(), linkage_key=..., references=...)`` answers
``match(subject, max_candidates=..., include_household=...)`` with wire
``MatchCandidate`` objects: opaque references, scores, explanations and tokens, never
facts.
"""

from connectors.matching.matcher import IDENTIFIER_RULE, Matcher, ScoredRecord
from connectors.matching.model import MatchModel, Score
from connectors.matching.references import LocalReferences
from connectors.matching.tokens import LinkageKey, linkage_tokens

__all__ = [
    "IDENTIFIER_RULE",
    "LinkageKey",
    "LocalReferences",
    "MatchModel",
    "Matcher",
    "Score",
    "ScoredRecord",
    "linkage_tokens",
]
