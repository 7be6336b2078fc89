"""The contract between the broker and every connector: messages and signed envelopes."""

from audit.canonical import CanonicalizationError, canonical_json
from connectors.protocol.envelope import (
    Envelope,
    KeyRing,
    Opened,
    ReplayCache,
    Signer,
    Verifier,
    body_digest,
)
from connectors.protocol.keys import KeyPair, key_id_for
from connectors.protocol.messages import (
    PROTOCOL_VERSION,
    FetchRequest,
    FetchResponse,
    Manifest,
    MatchRequest,
    MatchResponse,
)

__all__ = [
    "PROTOCOL_VERSION",
    "CanonicalizationError",
    "Envelope",
    "FetchRequest",
    "FetchResponse",
    "KeyPair",
    "KeyRing",
    "Manifest",
    "MatchRequest",
    "MatchResponse",
    "Opened",
    "ReplayCache",
    "Signer",
    "Verifier",
    "body_digest",
    "canonical_json",
    "key_id_for",
]
