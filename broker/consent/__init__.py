"""The consent register: who agreed to what, for which purpose and agencies, and when."""

from __future__ import annotations

from broker.consent.service import TRANSITIONS, ConsentService
from broker.consent.vocabulary import ConsentVocabulary

__all__ = ["TRANSITIONS", "ConsentService", "ConsentVocabulary"]
