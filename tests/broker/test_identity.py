"""Bearer tokens against a real JWKS served over HTTP by the development issuer."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from typer.testing import CliRunner

from broker.cli import app as cli
from broker.errors import BadToken, TokenExpired
from broker.identity import ClaimNames, DevIssuer, Role, TokenVerifier
from broker.identity.dev_issuer import load_or_create_key
from broker.settings import BrokerSettings
from connectors.protocol.keys import KeyPair
from tests.broker.foundation_kit import IssuerServer, running_broker

pytestmark = pytest.mark.anyio


def _problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"] == f"urn:junction:problem:{code}"
    return body


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _issuer_key(server: IssuerServer) -> KeyPair:
    return load_or_create_key(server.data_dir / "dev-oidc.key")


async def test_a_valid_token_reaches_the_endpoint(tmp_path: Path, dev_issuer: IssuerServer):
    async with running_broker(tmp_path, dev_issuer) as broker:
        response = await broker.client.get("/v1/agencies", headers=broker.as_(Role.ADMIN))
    assert response.status_code == 200
    assert response.json() == []


async def test_no_token_is_401_with_a_challenge(tmp_path: Path, dev_issuer: IssuerServer):
    async with running_broker(tmp_path, dev_issuer) as broker:
        response = await broker.client.get("/v1/agencies")
    body = _problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in body["detail"]


async def test_an_expired_token_is_refused(tmp_path: Path, dev_issuer: IssuerServer):
    earlier = DevIssuer(
        _issuer_key(dev_issuer), dev_issuer.url, "junction-broker", clock=lambda: time.time() - 7200
    )
    token = earlier.mint(role=Role.ADMIN, agency="council", name="Old Token")
    async with running_broker(tmp_path, dev_issuer) as broker:
        response = await broker.client.get("/v1/agencies", headers=_bearer(token))
    body = _problem(response, 401, "token-expired")
    assert "sign in again" in body["detail"]


async def test_a_token_from_another_issuer_is_refused(tmp_path: Path, dev_issuer: IssuerServer):
    stranger = DevIssuer(
        _issuer_key(dev_issuer), "https://idp.elsewhere.example", "junction-broker"
    )
    token = stranger.mint(role=Role.ADMIN, agency="council", name="Mallory")
    async with running_broker(tmp_path, dev_issuer) as broker:
        response = await broker.client.get("/v1/agencies", headers=_bearer(token))
    body = _problem(response, 401, "unknown-issuer")
    assert "idp.elsewhere.example" in body["detail"]
    assert dev_issuer.url in body["detail"]


async def test_a_forged_signature_is_refused(tmp_path: Path, dev_issuer: IssuerServer):
    genuine = dev_issuer.issuer.mint(role=Role.CASEWORKER, agency="council", name="Sam")
    claims = jwt.decode(genuine, options={"verify_signature": False})
    claims["role"] = "admin"
    forged = jwt.encode(
        claims,
        KeyPair.generate().private_key,
        algorithm="EdDSA",
        headers={"kid": dev_issuer.issuer.key_id},
    )
    async with running_broker(tmp_path, dev_issuer) as broker:
        response = await broker.client.get("/v1/agencies", headers=_bearer(forged))
    body = _problem(response, 401, "bad-token")
    assert "signature does not verify" in body["detail"]


async def test_a_key_the_issuer_never_published_is_refused(
    tmp_path: Path, dev_issuer: IssuerServer
):
    other = DevIssuer(KeyPair.generate(), dev_issuer.url, "junction-broker")
    token = other.mint(role=Role.ADMIN, agency="council", name="Mallory")
    async with running_broker(tmp_path, dev_issuer) as broker:
        response = await broker.client.get("/v1/agencies", headers=_bearer(token))
    body = _problem(response, 401, "bad-token")
    assert "publishes no key" in body["detail"]


async def test_a_token_for_another_audience_is_refused(tmp_path: Path, dev_issuer: IssuerServer):
    elsewhere = DevIssuer(_issuer_key(dev_issuer), dev_issuer.url, "payroll")
    token = elsewhere.mint(role=Role.ADMIN, agency="council", name="Sam")
    async with running_broker(tmp_path, dev_issuer) as broker:
        response = await broker.client.get("/v1/agencies", headers=_bearer(token))
    body = _problem(response, 401, "bad-token")
    assert "'junction-broker'" in body["detail"]


async def test_a_symmetric_algorithm_is_refused(tmp_path: Path, dev_issuer: IssuerServer):
    claims = jwt.decode(
        dev_issuer.issuer.mint(role=Role.ADMIN, agency="council", name="Sam"),
        options={"verify_signature": False},
    )
    token = jwt.encode(claims, "s" * 32, algorithm="HS256", headers={"kid": "k"})
    async with running_broker(tmp_path, dev_issuer) as broker:
        response = await broker.client.get("/v1/agencies", headers=_bearer(token))
    body = _problem(response, 401, "bad-token")
    assert "'HS256' is not accepted" in body["detail"]


async def test_what_a_refused_token_says_of_itself_is_echoed_short(
    tmp_path: Path, dev_issuer: IssuerServer
):
    # An unsigned token can say anything: a refusal names what it said, but not a page of it.
    claims = jwt.decode(
        dev_issuer.issuer.mint(role=Role.ADMIN, agency="council", name="Sam"),
        options={"verify_signature": False},
    )
    long = "x" * 3000

    def unsigned(header: dict[str, Any], body: dict[str, Any]) -> str:
        parts = (json.dumps(header).encode(), json.dumps(body).encode(), b"sig")
        return ".".join(base64.urlsafe_b64encode(p).rstrip(b"=").decode() for p in parts)

    tokens = [
        ("unknown-issuer", unsigned({"alg": "EdDSA"}, {**claims, "iss": "https://" + long})),
        ("bad-token", unsigned({"alg": "EdDSA" + long, "kid": "k"}, claims)),
        ("bad-token", unsigned({"alg": "EdDSA", "kid": long}, claims)),
    ]
    async with running_broker(tmp_path, dev_issuer) as broker:
        answers = [
            (code, await broker.client.get("/v1/agencies", headers=_bearer(token)))
            for code, token in tokens
        ]
    for code, response in answers:
        body = _problem(response, 401, code)
        assert len(body["detail"]) < 300, body["detail"]
        assert "xxxxxxxx…" in body["detail"]


async def test_garbage_and_unknown_roles_are_refused(tmp_path: Path, dev_issuer: IssuerServer):
    key = _issuer_key(dev_issuer)
    claims = jwt.decode(
        dev_issuer.issuer.mint(role=Role.ADMIN, agency="council", name="Sam"),
        options={"verify_signature": False},
    )
    claims["role"] = "superuser"
    unknown_role = jwt.encode(
        claims, key.private_key, algorithm="EdDSA", headers={"kid": key.key_id}
    )
    async with running_broker(tmp_path, dev_issuer) as broker:
        garbage = await broker.client.get("/v1/agencies", headers=_bearer("not.a.jwt"))
        role = await broker.client.get("/v1/agencies", headers=_bearer(unknown_role))
    assert "well-formed JWT" in _problem(garbage, 401, "bad-token")["detail"]
    assert "caseworker, ig_officer, admin, connector" in _problem(role, 401, "bad-token")["detail"]


@pytest.mark.parametrize(
    ("claims", "words"),
    [
        ({"sub": ""}, "the token's 'sub' claim is empty, so the broker cannot record who acts"),
        ({"sub": "dev:council:" + "s" * 200}, "'sub' claim is longer than the 200 characters"),
        ({"agency": "c" * 64}, "'agency' claim is longer than the 63 characters"),
        ({"name": "N" * 201}, "'name' claim is longer than the 200 characters"),
        ({"sub": "dev:council:sam\u0000okafor"}, "'sub' claim holds a control character"),
        ({"agency": "coun\u0000cil"}, "'agency' claim holds a control character"),
        ({"name": "Sam\u001bOkafor"}, "'name' claim holds a control character"),
    ],
)
async def test_a_token_naming_the_caller_in_claims_no_record_can_hold_is_refused(
    tmp_path: Path, dev_issuer: IssuerServer, claims: dict[str, str], words: str
):
    key = _issuer_key(dev_issuer)
    signed = jwt.decode(
        dev_issuer.issuer.mint(role=Role.CASEWORKER, agency="council", name="Sam Okafor"),
        options={"verify_signature": False},
    )
    token = jwt.encode(
        {**signed, **claims}, key.private_key, algorithm="EdDSA", headers={"kid": key.key_id}
    )
    body = {
        "identifiers": [{"kind": "nhs_number", "value": "9434765919"}],
        "purpose": "early_help_assessment",
        "scope": "all",
        "channel": "phone",
    }
    async with running_broker(tmp_path, dev_issuer) as broker:
        response = await broker.client.post("/v1/consents", json=body, headers=_bearer(token))
        entries = broker.entries("consent_change")
    assert words in _problem(response, 401, "bad-token")["detail"]
    assert entries == []


async def test_a_role_not_allowed_is_403(tmp_path: Path, dev_issuer: IssuerServer):
    async with running_broker(tmp_path, dev_issuer) as broker:
        response = await broker.client.post(
            "/v1/agencies",
            json={"id": "council", "name": "Council", "type": "local_authority"},
            headers=broker.as_(Role.CASEWORKER),
        )
    body = _problem(response, 403, "forbidden")
    assert body["role"] == "caseworker"
    assert "admin" in body["detail"]


async def test_an_unreachable_issuer_is_503(tmp_path: Path, dev_issuer: IssuerServer):
    async with running_broker(tmp_path, dev_issuer) as broker:
        gone = TokenVerifier("http://127.0.0.1:9", "junction-broker", httpx.AsyncClient())
        broker.app.state.token_verifier = gone
        token = DevIssuer(_issuer_key(dev_issuer), "http://127.0.0.1:9", "junction-broker").mint(
            role=Role.ADMIN, agency="council", name="Sam"
        )
        response = await broker.client.get("/v1/agencies", headers=_bearer(token))
        await gone._http.aclose()
    body = _problem(response, 503, "issuer-unavailable")
    assert "identity provider is up" in body["detail"]


async def test_the_token_endpoint_signs_in_over_http(tmp_path: Path, dev_issuer: IssuerServer):
    async with httpx.AsyncClient() as http:
        issued = await http.post(
            f"{dev_issuer.url}/token",
            data={"role": "ig_officer", "agency": "council", "name": "Priya Shah"},
        )
        refused = await http.post(
            f"{dev_issuer.url}/token", data={"role": "root", "agency": "council", "name": "X"}
        )
    assert issued.status_code == 200
    token = issued.json()["access_token"]
    assert issued.json()["token_type"] == "Bearer"
    assert refused.status_code == 422
    async with running_broker(tmp_path, dev_issuer) as broker:
        principal = await broker.app.state.token_verifier.verify(token)
        allowed = await broker.client.get("/v1/agencies", headers=_bearer(token))
    assert (principal.role, principal.agency, principal.name) == (
        Role.IG_OFFICER,
        "council",
        "Priya Shah",
    )
    assert allowed.status_code == 200


@pytest.mark.parametrize(
    ("form", "words"),
    [
        ({"agency": "council", "name": "Sam\u0000Okafor"}, "name holds a control character"),
        ({"agency": "coun\u0000cil", "name": "Sam Okafor"}, "agency holds a control character"),
        ({"agency": "council", "name": "Sam\tOkafor"}, "name holds a control character"),
        ({"agency": "", "name": "Sam Okafor"}, "needs a role, an agency and a name"),
        ({"agency": "council", "name": "   "}, "needs an agency and a display name"),
    ],
)
async def test_the_token_endpoint_refuses_a_user_no_record_can_name(
    dev_issuer: IssuerServer, form: dict[str, str], words: str
):
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{dev_issuer.url}/token", data={"role": "caseworker", **form})
    assert words in _problem(response, 422, "invalid-request")["detail"]


def test_dev_token_command_prints_a_token_the_broker_accepts(
    dev_issuer: IssuerServer, anyio_backend: str
):
    env = {
        "JUNCTION_DATA_DIR": str(dev_issuer.data_dir),
        "JUNCTION_PUBLIC_URL": dev_issuer.url.removesuffix("/dev-oidc"),
    }
    result = CliRunner().invoke(
        cli, ["dev-token", "--role", "caseworker", "--agency", "council", "--ttl", "600"], env=env
    )
    assert result.exit_code == 0, result.output
    claims = jwt.decode(result.stdout.strip(), options={"verify_signature": False})
    assert claims["iss"] == dev_issuer.url
    assert claims["exp"] - claims["iat"] == 600
    bad = CliRunner().invoke(
        cli, ["dev-token", "--role", "caseworker", "--agency", "council", "--ttl", "0"], env=env
    )
    assert bad.exit_code == 2
    assert bad.stderr.startswith("error: ")
    production = {
        **env,
        "JUNCTION_DEV_ISSUER": "false",
        "JUNCTION_OIDC_ISSUER": "https://idp.example",
    }
    refused = CliRunner().invoke(
        cli, ["dev-token", "--role", "admin", "--agency", "council"], env=production
    )
    assert refused.exit_code == 2
    assert "sign in at https://idp.example" in refused.stderr
    # A token naming an agency no registry can hold would be accepted and match nothing.
    capital = CliRunner().invoke(
        cli, ["dev-token", "--role", "caseworker", "--agency", "Council"], env=env
    )
    assert capital.exit_code == 2
    assert capital.stderr.startswith("error: --agency 'Council' is not an agency id")
    # Nor is a token the broker would refuse at sign-in printed as if it would work.
    job = CliRunner().invoke(
        cli,
        ["dev-token", "--role", "caseworker", "--agency", "council", "--job-role", "Social Worker"],
        env=env,
    )
    assert job.exit_code == 2
    assert job.stderr == (
        "error: the job role 'Social Worker' is not a job name: lower-case letters, digits"
        " and '_' (e.g. social_worker)\n"
    )
    assert job.stdout == ""


def test_the_dev_issuer_key_is_private(tmp_path: Path):
    settings = BrokerSettings(data_dir=tmp_path)
    load_or_create_key(settings.dev_issuer_key_file())
    assert settings.dev_issuer_key_file().stat().st_mode & 0o777 == 0o600


class _RotatingJwks(httpx.AsyncBaseTransport):
    """An identity provider whose JWKS can gain a key; counts JWKS downloads."""

    def __init__(self, issuer: str, first: DevIssuer) -> None:
        self.issuer = issuer
        self.keys = list(first.jwks()["keys"])
        self.fetches = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("openid-configuration"):
            body = {"issuer": self.issuer, "jwks_uri": f"{self.issuer}/keys"}
        else:
            self.fetches += 1
            body = {"keys": self.keys}
        return httpx.Response(200, json=body, request=request)


async def test_jwks_is_cached_refetched_for_a_new_key_id_and_a_withdrawn_key_ends_its_tokens():
    url = "https://idp.example"
    first = DevIssuer(KeyPair.generate(), url, "junction-broker")
    second = DevIssuer(KeyPair.generate(), url, "junction-broker")
    idp = _RotatingJwks(url, first)
    now = [1000.0]
    async with httpx.AsyncClient(transport=idp) as http:
        verifier = TokenVerifier(url, "junction-broker", http, clock=lambda: now[0])
        early = first.mint(role=Role.ADMIN, agency="council", name="A")
        for _ in range(3):
            assert (await verifier.verify(early)).name == "A"
        assert idp.fetches == 1
        idp.keys += second.jwks()["keys"]
        rotated = second.mint(role="caseworker", agency="school", name="B")
        # Straight after a download, an unknown key id does not trigger another one.
        with pytest.raises(BadToken):
            await verifier.verify(rotated)
        assert idp.fetches == 1
        now[0] += 11
        principal = await verifier.verify(rotated)
        assert idp.fetches == 2
        assert principal.agency == "school"
        # The issuer withdraws the first key: a token it signed, though verified before,
        # is refused once the keys are downloaded again.
        idp.keys = second.jwks()["keys"]
        now[0] += 3600
        await verifier.verify(rotated)
        assert idp.fetches == 3
        with pytest.raises(BadToken, match="key"):
            await verifier.verify(early)


async def test_a_remembered_token_still_expires():
    url = "https://idp.example"
    issuer = DevIssuer(KeyPair.generate(), url, "junction-broker")
    async with httpx.AsyncClient(transport=_RotatingJwks(url, issuer)) as http:
        verifier = TokenVerifier(url, "junction-broker", http, leeway_seconds=0)
        token = issuer.mint(role=Role.CASEWORKER, agency="council", name="A", ttl_seconds=1)
        assert (await verifier.verify(token)).name == "A"
        await anyio.sleep(1.1)
        with pytest.raises(TokenExpired):
            await verifier.verify(token)


class _StaticJwks(httpx.AsyncBaseTransport):
    def __init__(self, issuer: str, keys: list[dict[str, Any]]) -> None:
        self.issuer, self.keys = issuer, keys

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("openid-configuration"):
            body: dict[str, Any] = {"issuer": self.issuer, "jwks_uri": f"{self.issuer}/keys"}
        else:
            body = {"keys": self.keys}
        return httpx.Response(200, json=body, request=request)


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
async def test_rsa_and_ecdsa_issuers_are_accepted(algorithm: str):
    url = "https://login.example/realms/junction"
    if algorithm == "RS256":
        private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    else:
        private = ec.generate_private_key(ec.SECP256R1())
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private.public_key()))
    jwk.update({"kid": "k1", "alg": algorithm, "use": "sig"})
    now = int(time.time())
    claims = {
        "iss": url,
        "aud": ["junction-broker", "account"],
        "sub": "f3a1",
        "iat": now,
        "exp": now + 300,
        "junction_role": "ig_officer",
        "junction_agency": "council",
        "name": "Priya Shah",
    }
    token = jwt.encode(claims, private, algorithm=algorithm, headers={"kid": "k1"})
    async with httpx.AsyncClient(transport=_StaticJwks(url, [jwk])) as http:
        verifier = TokenVerifier(
            url,
            "junction-broker",
            http,
            claims=ClaimNames(role="junction_role", agency="junction_agency"),
        )
        principal = await verifier.verify(token)
    assert (principal.subject, principal.role, principal.agency) == (
        "f3a1",
        Role.IG_OFFICER,
        "council",
    )
