"""The consent register: who agreed to what, for which purpose and agencies, and when."""

from __future__ import annotations

from broker.consent.service import TRANSITIONS, ConsentService

__all__ = ["TRANSITIONS", "ConsentService"]
