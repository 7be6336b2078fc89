"""Fetching a connector's signed manifest and checking it against what was registered."""

from __future__ import annotations

import httpx

from broker.errors import ConnectorUnreachable, ManifestRejected
from connectors.protocol.envelope import Envelope, KeyRing, Verifier
from connectors.protocol.errors import EnvelopeError, UnknownKey
from connectors.protocol.keys import KeyFileError, key_id_for, public_key_from_b64
from connectors.protocol.messages import Manifest

__all__ = ["fetch_manifest"]

# A manifest lists an agency's fields: kilobytes. A far longer answer is cut off as it
# arrives rather than held in the broker's memory whole.
_MANIFEST_MOST = 8 * 1024 * 1024


class _TooLarge(Exception):
    pass


async def _get(http: httpx.AsyncClient, url: str, timeout_seconds: float) -> tuple[int, bytes]:
    """The status and body of ``GET url``; raises ``_TooLarge`` past ``_MANIFEST_MOST``."""
    body = bytearray()
    async with http.stream("GET", url, timeout=timeout_seconds) as response:
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > _MANIFEST_MOST:
                raise _TooLarge
    return response.status_code, bytes(body)


def _other_signer(url: str, raw: bytes, agency_id: str, key_id: str) -> str:
    """Why a manifest is not ``agency_id``'s: whose connector it says it is, or whose key.

    The envelope's claims are not verified here; they only make the message precise.
    """
    try:
        header = Envelope.parse(raw).header
    except EnvelopeError:
        header = {}
    sender, kid = header.get("sender"), header.get("kid")
    if kid == key_id and isinstance(sender, str) and sender != agency_id:
        return (
            f"the connector at {url} signs as {sender[:64]!r} with the key given, so it is "
            f"{sender[:64]}'s connector, not {agency_id}'s; register it under {sender[:64]}"
        )
    signer = f"key {kid[:64]}, not" if isinstance(kid, str) else "another key than"
    return (
        f"the connector at {url} signs with {signer} the registered {key_id}; "
        "register the key it signs with"
    )


async def fetch_manifest(
    http: httpx.AsyncClient,
    *,
    base_url: str,
    agency_id: str,
    public_key: str,
    audience: str,
    agency_type: str | None = None,
    consent_key_id: str | None = None,
    timeout_seconds: float = 5.0,
) -> Manifest:
    """``GET {base_url}/v1/manifest``, verified under ``public_key`` as ``agency_id``.

    Raises ``ManifestRejected`` for a bad key, a bad envelope, another agency's manifest,
    a manifest announcing another key, another agency type than ``agency_type`` or
    another consent key than ``consent_key_id``; ``ConnectorUnreachable`` when the
    connector does not answer with an envelope.
    """
    try:
        key = public_key_from_b64(public_key)
    except KeyFileError as exc:
        raise ManifestRejected(f"the registered public key is unusable: {exc}") from None
    url = base_url.rstrip("/") + "/v1/manifest"
    try:
        status, content = await _get(http, url, timeout_seconds)
    except httpx.HTTPError as exc:
        raise ConnectorUnreachable(
            f"cannot reach {url} ({type(exc).__name__}); check the URL and that it is running"
        ) from None
    except _TooLarge:
        raise ManifestRejected(
            f"the answer from {url} is over {_MANIFEST_MOST // (1024 * 1024)} MB, far more than"
            " a manifest holds, and was cut off; check that the URL is the connector's"
        ) from None
    if status != 200:
        raise ConnectorUnreachable(f"{url} answered HTTP {status}; check the connector's log")
    keyring = KeyRing()
    keyring.add(agency_id, key)
    try:
        opened = Verifier(keyring, audience).open(content, Manifest)
    except UnknownKey:
        raise ManifestRejected(_other_signer(url, content, agency_id, key_id_for(key))) from None
    except EnvelopeError as exc:
        raise ManifestRejected(
            f"the manifest from {url} does not verify as {agency_id}'s: {exc}"
        ) from None
    manifest = opened.message
    if manifest.agency_id != agency_id:
        raise ManifestRejected(
            f"the connector at {url} says it is {manifest.agency_id!r}, not {agency_id!r}"
        )
    if manifest.public_key != public_key or manifest.key_id != key_id_for(key):
        raise ManifestRejected(
            f"the manifest announces key {manifest.key_id}, not the registered "
            f"{key_id_for(key)}; register the key the connector signs with"
        )
    if agency_type is not None and manifest.agency_type != agency_type:
        # The policy decides by the registered type: a connector built for another kind
        # of agency would be asked, and answer, under rules not meant for it.
        raise ManifestRejected(
            f"the connector says {agency_id} is a {manifest.agency_type!r} agency, but it is "
            f"registered as {agency_type!r}; correct the agency's type or the connector's "
            "mapping (agency.type)"
        )
    held = manifest.consent_key_id
    if consent_key_id is not None and held is not None and held != consent_key_id:
        # Its consent references could never equal the broker's: consent recorded under
        # an identifier its records hold would silently go unseen.
        raise ManifestRejected(
            f"the connector holds consent key {held}, not the broker's "
            f"{consent_key_id}; give it a copy of the broker's consent.key (or none)"
        )
    return manifest
