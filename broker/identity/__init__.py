"""Who is calling: OpenID Connect bearer tokens, roles, and the development issuer."""

from __future__ import annotations

from broker.identity.dependencies import require, roles_text
from broker.identity.dev_issuer import DevIssuer, load_or_create_key
from broker.identity.principal import Principal, Role
from broker.identity.tokens import ALGORITHMS, ClaimNames, TokenVerifier

__all__ = [
    "ALGORITHMS",
    "ClaimNames",
    "DevIssuer",
    "Principal",
    "Role",
    "TokenVerifier",
    "load_or_create_key",
    "require",
    "roles_text",
]
