"""One line for a config or mapping file that does not validate, naming the member.

A misspelt member is reported as itself, with the nearest known member when one is
close: pydantic lists the member it then misses first ("signing_key: Field required"),
which names the member the operator spelt right, not the one they got wrong.
"""

from __future__ import annotations

import difflib
from typing import Any, get_args

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

__all__ = ["first_problem"]


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _models_in(arg)]


def _member_names(model: type[BaseModel], seen: set[type[BaseModel]]) -> set[str]:
    seen.add(model)
    names: set[str] = set()
    for name, info in model.model_fields.items():
        names.add(info.alias or name)
        for inner in _models_in(info.annotation):
            if inner not in seen:
                names |= _member_names(inner, seen)
    return names


def _where(loc: tuple[int | str, ...], root: str | None) -> str:
    return ".".join(str(part) for part in (root, *loc) if part is not None) or "(top)"


def _unknown(
    error: ErrorDetails, errors: list[ErrorDetails], model: type[BaseModel], root: str | None
) -> str:
    name = str(error["loc"][-1])
    parent = error["loc"][:-1]
    # A member missing beside the unknown one is the likeliest meant; else any we know.
    missing = [
        str(e["loc"][-1]) for e in errors if e["type"] == "missing" and e["loc"][:-1] == parent
    ]
    # A name known elsewhere in the file (``field`` of a withholding) is no answer here.
    known = sorted(_member_names(model, set()) - {name})
    close = difflib.get_close_matches(name, missing, n=1, cutoff=0.6) or (
        difflib.get_close_matches(name, known, n=1, cutoff=0.75)
    )
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{_where(error['loc'], root)}: not a known member{hint}"


def first_problem(exc: ValidationError, model: type[BaseModel], *, root: str | None = None) -> str:
    """``"<member>: <what is wrong>"`` for the error an operator should fix first.

    ``root`` names the object validated, when the member should be shown inside it
    (``decision.fields``).
    """
    errors = exc.errors()
    for error in errors:
        if error["type"] == "extra_forbidden":
            return _unknown(error, errors, model, root)
    first = errors[0]
    # A check of our own reads as its sentence, without pydantic's "Value error, ".
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"{_where(first['loc'], root)}: {message}"
