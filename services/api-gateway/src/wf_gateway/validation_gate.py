"""Refuse an invalid definition with 422 and every problem at once (SPEC §3)."""
from typing import Any

from .domain.validation import validate_definition
from .problems import Problem


def check_definition(definition: Any) -> None:
    errors = validate_definition(definition)
    if errors:
        raise Problem(422, "The workflow definition is not valid.", errors)
