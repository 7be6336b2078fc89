"""Routes: which policy bundle is in force, and reloading it. Every reload is audited."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from broker._text import ONE_LINE
from broker.errors import BrokerError
from broker.identity.dependencies import require, roles_text
from broker.identity.principal import Principal, Role
from broker.policy_admin.runner import PolicyThread
from policies.errors import EngineUnavailable, PolicyError

__all__ = ["router"]

router = APIRouter(prefix="/v1/policy", tags=["policy"])


class PolicyState(BaseModel):
    digest: str = Field(description="SHA-256 over the bundle's files: cited in every decision.")
    engine: str


class ReloadIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=3, max_length=200), ONE_LINE
    ] = Field(
        description="Why the bundle changes: recorded with the change, on one line.",
        examples=["Agreement fields updated"],
    )


class ReloadRefused(BrokerError):
    code = "policy-reload-refused"
    title = "The new policy bundle was refused; the one in force is unchanged"
    status = 422


class EngineUnavailableProblem(BrokerError):
    code = "policy-engine-unavailable"
    title = "The policy engine is unavailable; the bundle in force is unchanged"
    status = 503


async def _policy(request: Request) -> PolicyThread:
    policy: PolicyThread = request.app.state.foundation.policy
    return policy


@router.get("", description=roles_text(Role.ADMIN, Role.IG_OFFICER) + " The bundle in force.")
def policy_state(
    _: Annotated[Principal, Depends(require(Role.ADMIN, Role.IG_OFFICER))],
    policy: Annotated[PolicyThread, Depends(_policy)],
) -> PolicyState:
    return PolicyState(digest=policy.digest, engine=policy.engine_name)


@router.post(
    "/reload",
    description=roles_text(Role.ADMIN)
    + " Read the bundle again, run its own Rego tests, and swap it in. A bundle that fails"
    " is refused (422) and the one in force stays; so it does while the OPA server cannot"
    " be reached (503) or the audit log cannot record the change (503). Each reload is a"
    " policy_change audit entry with the new digest.",
)
def reload_policy(
    body: ReloadIn,
    principal: Annotated[Principal, Depends(require(Role.ADMIN))],
    policy: Annotated[PolicyThread, Depends(_policy)],
) -> PolicyState:
    # A plain function: FastAPI runs it in a worker thread, so running the bundle's tests
    # does not hold up the event loop (decisions queue behind it on the policy thread).
    try:
        digest = policy.reload(
            actor=principal.subject, reason=body.reason, actor_agency=principal.agency
        )
    except EngineUnavailable as exc:
        raise EngineUnavailableProblem(
            f"{exc}; the bundle in force is unchanged. Reload again once it answers."
        ) from None
    except PolicyError as exc:
        raise ReloadRefused(str(exc)) from None
    return PolicyState(digest=digest, engine=policy.engine_name)
