"""Signed envelopes: how the broker and the connectors talk.

An envelope is a JSON object with three members::

    {"header": {...}, "body": {...}, "signature": "<base64 Ed25519>"}

The body is any protocol message. The header carries the algorithm, the key id, the
sender and the audience, the issued-at and expiry times (Unix seconds), a random nonce,
the message type and ``body_digest``: SHA-256 over the RFC 8785 canonical JSON of the
body. The signature is a detached Ed25519 signature over the canonical JSON of the
header, so it covers the body through its digest.

Verification tells apart, each with its own error: a malformed envelope, a missing
field, an unknown key, a bad signature, an altered body, the wrong audience, an expired
or not-yet-valid envelope, a replayed nonce and the wrong message type.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, NamedTuple, TypeVar, get_args

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ValidationError

from audit.canonical import (
    CanonicalizationError,
    canonical_json,
    canonical_json_of_parsed,
    has_non_finite,
    may_differ_from_jcs,
)
from connectors.protocol.errors import (
    AlteredBody,
    BadSignature,
    Expired,
    MalformedEnvelope,
    MissingField,
    NotYetValid,
    Replayed,
    UnknownKey,
    WrongAudience,
    WrongMessageType,
)
from connectors.protocol.keys import KeyPair, key_id_for

__all__ = [
    "Clock",
    "Envelope",
    "KeyRing",
    "Opened",
    "ReplayCache",
    "Signer",
    "Verifier",
    "body_digest",
    "message_type_of",
]

Clock = Callable[[], float]
M = TypeVar("M", bound=BaseModel)

_HEADER_FIELDS = (
    "alg",
    "kid",
    "sender",
    "audience",
    "iat",
    "exp",
    "nonce",
    "type",
    "body_digest",
)


_HEADER_NAMES = frozenset(_HEADER_FIELDS)


def body_digest(body: Mapping[str, Any]) -> str:
    """Return ``sha256:<hex>`` over the canonical JSON of ``body``."""
    return "sha256:" + hashlib.sha256(canonical_json(body)).hexdigest()


def message_type_of(model: type[BaseModel]) -> str:
    """The message type a model travels under: its ``message_type`` class attribute."""
    value = getattr(model, "message_type", None)
    if not isinstance(value, str):
        raise TypeError(f"{model.__name__} has no message_type; it is not a protocol message")
    return value


@dataclass(frozen=True, slots=True)
class Envelope:
    """A parsed, not yet verified, envelope.

    ``signed_body()`` gives the bytes the body digest covers: the RFC 8785 form of the
    body. A sealed envelope computes it once and reuses it for the wire bytes. A received
    envelope in the standard wire framing keeps the body bytes exactly as transmitted (as
    JWS does), so verification hashes them without re-serialising; one that was
    re-serialised on the way (a proxy, a pretty-printer) is canonicalised again.
    """

    header: dict[str, Any]
    # None for a sealed envelope: its body is kept as canonical bytes and decoded on use.
    _body: dict[str, Any] | None
    signature: str
    _canonical_header: bytes | None = field(default=None, repr=False, compare=False)
    _canonical_body: bytes | None = field(default=None, repr=False, compare=False)
    # True when body came straight from the JSON parser, so it holds no NaN or infinity.
    _parsed: bool = field(default=False, repr=False, compare=False)

    @property
    def body(self) -> dict[str, Any]:
        if self._body is None:
            if self._canonical_body is None:
                raise ValueError("an envelope needs its body or the body's canonical bytes")
            decoded = orjson.loads(self._canonical_body)
            object.__setattr__(self, "_body", decoded)
            return decoded  # type: ignore[no-any-return]
        return self._body

    def signed_body(self) -> bytes:
        if self._canonical_body is not None:
            return self._canonical_body
        encoded = canonical_json_of_parsed(self.body) if self._parsed else canonical_json(self.body)
        object.__setattr__(self, "_canonical_body", encoded)
        return encoded

    def canonical_header(self) -> bytes:
        if self._canonical_header is not None:
            return self._canonical_header
        encoded = _canonical_header(self.header)
        object.__setattr__(self, "_canonical_header", encoded)
        return encoded

    def digest(self) -> str:
        """What the audit entries of the exchange name it by: SHA-256 of the signed
        header, which covers the body through ``body_digest``. Its random nonce keeps a
        guess of the body (a person's details) from being confirmed against the digest."""
        return "sha256:" + hashlib.sha256(self.canonical_header()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {"header": self.header, "body": self.body, "signature": self.signature}

    def to_bytes(self) -> bytes:
        """The wire form: header and body in canonical JSON, then the signature."""
        return b"".join(
            (
                b'{"header":',
                self.canonical_header(),
                b',"body":',
                self.signed_body(),
                b',"signature":"',
                self.signature.encode("ascii"),
                b'"}',
            )
        )

    @classmethod
    def parse(cls, raw: bytes | str | Mapping[str, Any]) -> Envelope:
        """Parse wire bytes (or an already decoded object) into an ``Envelope``.

        Raises ``MalformedEnvelope`` for bad JSON or shapes and ``MissingField`` when a
        header member, the body or the signature is absent.
        """
        wire: bytes | None = None
        if isinstance(raw, bytes | str):
            wire = raw.encode("utf-8") if isinstance(raw, str) else raw
            try:
                data = orjson.loads(wire)
            except orjson.JSONDecodeError:
                raise MalformedEnvelope("the envelope is not valid JSON") from None
        else:
            data = dict(raw)
        if not isinstance(data, dict):
            raise MalformedEnvelope("the envelope must be a JSON object")
        for member in ("header", "body", "signature"):
            if member not in data:
                raise MissingField(f"the envelope has no '{member}'")
        header, body, signature = data["header"], data["body"], data["signature"]
        if not isinstance(header, dict) or not isinstance(body, dict):
            raise MalformedEnvelope("'header' and 'body' must be JSON objects")
        if not isinstance(signature, str):
            raise MalformedEnvelope("'signature' must be a base64 string")
        for name in _HEADER_FIELDS:
            if name not in header:
                raise MissingField(f"the envelope header has no '{name}'")
        if wire is None:
            return cls(header, body, signature)
        header_bytes = _canonical_header(header)
        body_bytes = _framed_body(wire, header_bytes, signature)
        return cls(header, body, signature, header_bytes, body_bytes, _parsed=True)


class _Parts(NamedTuple):
    """What verification needs: the header, the exact bytes signed, and the body."""

    header: dict[str, Any]
    header_bytes: bytes
    body_bytes: bytes
    signature: str
    body: dict[str, Any] | None  # None: validate body_bytes once the signature holds


_BASE64 = re.compile(rb"[A-Za-z0-9+/]+={0,2}")


def _parts(raw: bytes | str | Mapping[str, Any] | Envelope) -> _Parts:
    if isinstance(raw, bytes | str):
        wire = raw.encode("utf-8") if isinstance(raw, str) else raw
        framed = _split_framed(wire)
        if framed is not None:
            return framed
    envelope = raw if isinstance(raw, Envelope) else Envelope.parse(raw)
    try:
        body_bytes = envelope.signed_body()
    except CanonicalizationError:
        # The signer could not have hashed this body, so it is no signed message.
        raise MalformedEnvelope(_NO_CANONICAL_BODY) from None
    return _Parts(
        envelope.header,
        envelope.canonical_header(),
        body_bytes,
        envelope.signature,
        envelope.body,
    )


def _split_framed(wire: bytes) -> _Parts | None:
    """The parts of an envelope in the standard wire framing, without parsing its body.

    Anything unusual (another framing, a header that is not canonical, a stray quote)
    returns None, and the envelope goes through the full parse, which says precisely
    what is wrong.
    """
    if not wire.startswith(b'{"header":{') or not wire.endswith(b'"}'):
        return None
    end = wire.find(b'},"body":', 10)
    tail = wire.rfind(b',"signature":"')
    if end < 0 or tail <= end:
        return None
    header_bytes, signature = wire[10 : end + 1], wire[tail + 14 : -2]
    if not _BASE64.fullmatch(signature):
        return None
    try:
        header = orjson.loads(header_bytes)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(header, dict) or not header.keys() >= _HEADER_NAMES:
        return None
    try:
        if _canonical_header(header) != header_bytes:
            return None
    except MalformedEnvelope:
        return None
    return _Parts(header, header_bytes, wire[end + 9 : tail], signature.decode("ascii"), None)


def _canonical_header(header: dict[str, Any]) -> bytes:
    """RFC 8785 form of a header, whose members are ASCII names with str or int values.

    With no floats and no keys outside ASCII, sorted ``orjson`` output is already JCS.
    Raises ``MalformedEnvelope`` for any other value.
    """
    for name, value in header.items():
        kind = type(value)
        if not name.isascii() or not (kind is str or kind is int):
            raise MalformedEnvelope(f"header member '{name}' must be a string or an integer")
    try:
        return orjson.dumps(header, option=orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER)
    except orjson.JSONEncodeError as exc:
        raise MalformedEnvelope(f"the header has no canonical form: {exc}") from None


def _framed_body(wire: bytes, header: bytes, signature: str) -> bytes | None:
    """The body bytes of ``wire`` if it is in the standard framing, else None.

    The framing is fixed around the body (canonical header before it, the signature
    after it), so the body's extent is unambiguous.
    """
    if not signature.isascii():
        return None
    prefix_len = len(header) + 18  # {"header": ... ,"body":
    suffix = b',"signature":"' + signature.encode("ascii") + b'"}'
    if (
        len(wire) > prefix_len + len(suffix)
        and wire.startswith(b'{"header":')
        and wire.startswith(header, 10)
        and wire.startswith(b',"body":', 10 + len(header))
        and wire.endswith(suffix)
    ):
        return wire[prefix_len : len(wire) - len(suffix)]
    return None


# Names the kinds of value without echoing the one sent, which may be personal data.
_NO_CANONICAL_BODY = (
    "the body has no RFC 8785 canonical form: it holds a number outside I-JSON's range "
    "(an integer beyond 2**53, or a float such as 1e400) or text that is not Unicode"
)
_NOT_FINITE = "no canonical JSON form: NaN and infinity are not JSON"
_MESSAGE_JSON = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER | orjson.OPT_UTC_Z


def _float_fields(model: type[BaseModel]) -> tuple[str, ...]:
    """The fields of ``model`` whose declared type admits a float anywhere inside it."""

    def admits_float(annotation: object) -> bool:
        return annotation is float or any(admits_float(arg) for arg in get_args(annotation))

    return tuple(name for name, info in model.model_fields.items() if admits_float(info.annotation))


_FLOAT_FIELDS: dict[type, tuple[str, ...]] = {}
# Above this magnitude a non-integral float prints identically in orjson and RFC 8785
# (below it orjson writes "9.9e-6" where JCS writes "0.0000099"); no float at or beyond
# 2**53 is non-integral.
_PLAIN_FLOAT_FLOOR = 1e-5


def _canonical_message(message: BaseModel) -> bytes:
    """RFC 8785 form of a protocol message, printed straight from the model.

    orjson walks the model's fields (times as RFC 3339 text, enums as their values) in
    one pass with sorted keys, and the hook that hands it each nested model looks at
    every float on the way. A validated model is finite (JsonFloat), but one built with
    ``model_construct`` may not be, and orjson would print NaN as null: that is refused.
    Only when a float might print differently from JCS (integral, tiny, or inside a
    container) is the output scanned, as ``canonical_json`` does. A test holds the result
    to ``canonical_json`` of the model's JSON-mode dump.
    """
    plain = True

    def fields_of(value: object) -> dict[str, Any]:
        nonlocal plain
        names = _FLOAT_FIELDS.get(type(value))
        if names is None:
            if not isinstance(value, BaseModel):
                raise TypeError(f"{type(value).__name__} is not JSON")
            names = _FLOAT_FIELDS.setdefault(type(value), _float_fields(type(value)))
        fields: dict[str, Any] = value.__dict__
        for name in names:
            item = fields[name]
            if type(item) is float:
                if not math.isfinite(item):
                    raise CanonicalizationError(_NOT_FINITE)
                if item.is_integer() or -_PLAIN_FLOAT_FLOOR < item < _PLAIN_FLOAT_FLOOR:
                    plain = False
            elif isinstance(item, list | dict):
                if has_non_finite(item):
                    raise CanonicalizationError(_NOT_FINITE)
                plain = False
        return fields

    try:
        fast = orjson.dumps(message, default=fields_of, option=_MESSAGE_JSON)
    except orjson.JSONEncodeError as exc:
        if isinstance(exc.__cause__, CanonicalizationError):
            raise exc.__cause__ from None
        return canonical_json(message.model_dump(mode="json"))
    if (not plain or not fast.isascii()) and may_differ_from_jcs(fast):
        return canonical_json(message.model_dump(mode="json"))
    return fast


class Signer:
    """Seals messages into envelopes signed with one key pair."""

    def __init__(
        self,
        key: KeyPair,
        sender: str,
        *,
        lifetime_seconds: int = 60,
        clock: Clock = time.time,
    ) -> None:
        self._key = key
        self._kid = key.key_id
        self.sender = sender
        self._lifetime = lifetime_seconds
        self._clock = clock

    @property
    def key_id(self) -> str:
        return self._kid

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._key.public_key

    def seal(self, message: BaseModel, audience: str) -> Envelope:
        """Sign ``message`` for ``audience``; the envelope expires after the lifetime."""
        message_type = message_type_of(type(message))
        canonical_body = _canonical_message(message)
        now = int(self._clock())
        header = {
            "alg": "Ed25519",
            "kid": self._kid,
            "sender": self.sender,
            "audience": audience,
            "iat": now,
            "exp": now + self._lifetime,
            # 128 random bits for each envelope: unique per sender, and, since the
            # audit entries name an exchange by the header's digest, not guessable by
            # whoever holds them (see ``Envelope.digest``).
            "nonce": secrets.token_urlsafe(16),
            "type": message_type,
            "body_digest": "sha256:" + hashlib.sha256(canonical_body).hexdigest(),
        }
        # Our own header holds ASCII names with str and int values: sorted orjson is JCS.
        canonical_header = orjson.dumps(header, option=orjson.OPT_SORT_KEYS)
        signature = base64.b64encode(self._key.sign(canonical_header)).decode("ascii")
        return Envelope(header, None, signature, canonical_header, canonical_body, _parsed=True)


class ReplayCache:
    """Remembers nonces until their envelope expires, within a fixed capacity.

    When full, the entry closest to expiry is dropped first; an envelope whose nonce was
    dropped is also close to (or past) expiry, so the bound costs little protection. Size
    the capacity above the expected messages per lifetime.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self._capacity = capacity
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._seen)

    def check_and_add(self, key: str, expires_at: float, now: float) -> bool:
        """Record ``key``; return False if it was already recorded and has not expired."""
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and seen >= now:
                return False
            self._seen[key] = expires_at
            self._seen.move_to_end(key)
            # Expiry times arrive roughly in order, so the oldest entries sit at the front.
            while self._seen and (
                len(self._seen) > self._capacity or next(iter(self._seen.values())) < now
            ):
                self._seen.popitem(last=False)
            return True


@dataclass(frozen=True, slots=True)
class _TrustedKey:
    public_key: Ed25519PublicKey
    owner: str


@dataclass(slots=True)
class KeyRing:
    """The public keys a receiver trusts, by key id, each bound to its owner's name."""

    _keys: dict[str, _TrustedKey] = field(default_factory=dict)

    def add(self, owner: str, public_key: Ed25519PublicKey) -> str:
        """Trust ``public_key`` as ``owner``'s key; return its key id."""
        kid = key_id_for(public_key)
        self._keys[kid] = _TrustedKey(public_key, owner)
        return kid

    def remove(self, kid: str) -> None:
        self._keys.pop(kid, None)

    def owner_of(self, kid: str) -> str | None:
        trusted = self._keys.get(kid)
        return trusted.owner if trusted else None

    def get(self, kid: str) -> _TrustedKey | None:
        return self._keys.get(kid)


class Opened(NamedTuple, Generic[M]):
    """A verified envelope: who sent it, when, and the typed message (immutable)."""

    sender: str
    key_id: str
    issued_at: int
    expires_at: int
    nonce: str
    body_digest: str
    envelope_digest: str
    """``Envelope.digest`` of the envelope: what the audit entries name it by."""
    message: M


class Verifier:
    """Checks envelopes addressed to one receiver.

    ``max_skew_seconds`` tolerates clocks that disagree a little; ``max_lifetime_seconds``
    refuses envelopes that ask to live too long (which would defeat the replay cache).
    """

    def __init__(
        self,
        keyring: KeyRing,
        audience: str,
        *,
        replay_cache: ReplayCache | None = None,
        clock: Clock = time.time,
        max_skew_seconds: int = 30,
        max_lifetime_seconds: int = 300,
    ) -> None:
        self.keyring = keyring
        self.audience = audience
        self._replays = replay_cache if replay_cache is not None else ReplayCache()
        self._clock = clock
        self._skew = max_skew_seconds
        self._max_lifetime = max_lifetime_seconds

    def open(self, raw: bytes | str | Mapping[str, Any] | Envelope, expect: type[M]) -> Opened[M]:
        """Verify ``raw`` and parse its body as ``expect``.

        Raises a subclass of ``EnvelopeError`` naming the first check that failed.
        """
        parts = _parts(raw)
        header = parts.header
        kid = header["kid"]
        trusted = self.keyring.get(kid) if isinstance(kid, str) else None
        if trusted is None:
            raise UnknownKey(f"key id {kid!r} is not trusted by {self.audience}")
        if header["alg"] != "Ed25519":
            raise BadSignature(f"algorithm {header['alg']!r} is not accepted; use Ed25519")
        try:
            signature = base64.b64decode(parts.signature, validate=True)
            trusted.public_key.verify(signature, parts.header_bytes)
        except (InvalidSignature, binascii.Error, ValueError):
            raise BadSignature(f"the signature does not verify under key {kid}") from None
        if header["sender"] != trusted.owner:
            raise UnknownKey(f"key {kid} belongs to {trusted.owner!r}, not {header['sender']!r}")
        digest = "sha256:" + hashlib.sha256(parts.body_bytes).hexdigest()
        if digest != header["body_digest"]:
            raise AlteredBody("the body was changed after it was signed")
        if header["audience"] != self.audience:
            raise WrongAudience(
                f"the envelope is for {header['audience']!r}; this is {self.audience!r}"
            )
        iat, exp = header["iat"], header["exp"]
        if not isinstance(iat, int) or not isinstance(exp, int) or exp < iat:
            raise MalformedEnvelope("'iat' and 'exp' must be Unix seconds with exp >= iat")
        now = self._clock()
        if iat - self._skew > now:
            raise NotYetValid(f"issued at {iat}, which is ahead of this receiver's clock")
        if exp + self._skew < now:
            raise Expired(f"expired at {exp}; send a fresh envelope")
        if exp - iat > self._max_lifetime:
            raise Expired(f"a lifetime of {exp - iat}s exceeds {self._max_lifetime}s")
        expected_type = message_type_of(expect)
        if header["type"] != expected_type:
            raise WrongMessageType(f"expected a {expected_type!r}, got {header['type']!r}")
        try:
            if parts.body is not None:
                message = expect.model_validate(parts.body)
            else:
                # Straight from the signed bytes: one pass of parsing and validation.
                message = expect.model_validate_json(parts.body_bytes)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            if first["type"] == "json_invalid" or first["type"] == "model_type":
                raise MalformedEnvelope("the body must be a JSON object") from None
            if first["type"] == "missing":
                raise MissingField(f"the body has no '{where}'") from None
            raise MalformedEnvelope(f"body field '{where}': {first['msg']}") from None
        # Only a fully valid envelope consumes its nonce, so garbage cannot burn nonces.
        if not self._replays.check_and_add(f"{header['sender']}:{header['nonce']}", exp, now):
            raise Replayed(f"nonce {header['nonce']!r} from {header['sender']} was already used")
        return Opened(
            sender=header["sender"],
            key_id=kid,
            issued_at=iat,
            expires_at=exp,
            nonce=header["nonce"],
            body_digest=header["body_digest"],
            envelope_digest="sha256:" + hashlib.sha256(parts.header_bytes).hexdigest(),
            message=message,
        )
