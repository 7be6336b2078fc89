"""``junction policy``: run the Rego tests, explain a decision, print the bundle digest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from policies.bundle import Bundle, load_bundle
from policies.errors import PolicyError
from policies.model import ExchangeDecision, FamilyDecision, FamilyQueryInput
from policies.settings import EngineName, PolicySettings

__all__ = ["app"]

app = typer.Typer(
    help="Test, explain and identify the consent and purpose policy.", no_args_is_help=True
)

BundleOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--bundle",
        help="A bundle directory (rego/, data/); repeat to combine. "
        "Default: JUNCTION_POLICY_BUNDLE_DIRS or the bundle shipped with Junction.",
    ),
]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


def _bundle(dirs: list[Path] | None, settings: PolicySettings) -> Bundle:
    try:
        return load_bundle(dirs or settings.bundle_dirs)
    except PolicyError as exc:
        raise _fail(exc.detail) from None


@app.command("test")
def run_tests(
    bundle: BundleOption = None, verbose: Annotated[bool, typer.Option("-v")] = False
) -> None:
    """Run every Rego unit test of the bundle; exit 1 if any fails."""
    from policies.rego_tests import RegoTestResult, run_rego_tests

    loaded = _bundle(bundle, PolicySettings())

    def show(result: RegoTestResult) -> None:
        if result.outcome != "pass":
            line = f"{result.outcome.upper()} {result.module}: {result.name}"
            typer.echo(line + (f" ({result.detail})" if result.detail else ""))
        elif verbose:
            typer.echo(f"PASS {result.module}: {result.name}")

    report = run_rego_tests(loaded, on_result=show)
    if not report.results:
        typer.echo("FAIL: the bundle has no Rego tests")
        raise typer.Exit(1)
    if report.failures and report.failures[0].module == "(bundle)":
        show(report.failures[0])
    typer.echo(f"{report.summary()} ({loaded.digest})")
    if not report.ok:
        raise typer.Exit(1)


@app.command("digest")
def digest(bundle: BundleOption = None) -> None:
    """Print the bundle's digest (the value every decision and audit entry cites)."""
    typer.echo(_bundle(bundle, PolicySettings()).digest)


def _print_exchange(item: ExchangeDecision) -> None:
    verdict = "ALLOW" if item.allow else "DENY"
    agreement = f"{item.agreement.id} v{item.agreement.version}" if item.agreement else "none"
    header = f"{item.agency_id} / {item.person_ref}: {verdict}"
    typer.echo(f"\n{header} (tier: {item.tier}, agreement: {agreement})")
    for reason in item.reasons:
        typer.echo(f"  because [{reason.code}] {reason.text}")
    if item.permitted_fields:
        typer.echo("  may ask for: " + ", ".join(item.permitted_fields))
    for withheld in item.withheld:
        typer.echo(f"  withheld {withheld.field}: [{withheld.code}] {withheld.text}")
    for obligation in item.obligations:
        typer.echo(f"  must: [{obligation.code}] {obligation.text}")


def _print_decision(decision: FamilyDecision) -> None:
    typer.echo(f"policy bundle {decision.bundle_digest}, decided by {decision.engine}")
    typer.echo(f"\nrequest: {'ALLOW' if decision.submit.allow else 'DENY'}")
    for reason in decision.submit.reasons:
        typer.echo(f"  because [{reason.code}] {reason.text}")
    for obligation in decision.submit.obligations:
        typer.echo(f"  must: [{obligation.code}] {obligation.text}")
    for item in decision.exchanges:
        _print_exchange(item)


@app.command("explain")
def explain(
    input_file: Annotated[Path, typer.Option("--input", help="A family-query input (JSON).")],
    bundle: BundleOption = None,
    engine: Annotated[
        EngineName | None, typer.Option(help="Override JUNCTION_POLICY_ENGINE.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the decision as JSON.")] = False,
) -> None:
    """Decide a family query from an input file and print every reason.

    Exits with status 1 if the bundle could not decide it (every reason policy_error).
    """
    from policies.decide import FAMILY_ENTRYPOINT, POLICY_ERROR, decide_family
    from policies.engine import create_engine

    settings = PolicySettings()
    if engine is not None:
        settings.engine = engine
    try:
        query = FamilyQueryInput.model_validate_json(input_file.read_bytes())
    except OSError as exc:
        raise _fail(f"cannot read {input_file}: {exc.strerror}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise _fail(f"{input_file} is not a family-query input: {where}: {first['msg']}") from None
    loaded = _bundle(bundle, settings)
    try:
        policy_engine = create_engine(settings, loaded, compiled=[FAMILY_ENTRYPOINT])
    except PolicyError as exc:
        raise _fail(exc.detail) from None
    try:
        decision = decide_family(policy_engine, query)
    finally:
        policy_engine.close()
    if as_json:
        typer.echo(json.dumps(decision.model_dump(mode="json"), indent=2))
    else:
        _print_decision(decision)
    if POLICY_ERROR in decision.submit.reasons:
        typer.echo(
            "error: the policy could not decide this input, so it refuses everything"
            " (policy_error); the log line before this one says why",
            err=True,
        )
        raise typer.Exit(1)
