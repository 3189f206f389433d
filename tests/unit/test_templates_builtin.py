"""Builtin templates (SPEC §7): at least 8, across categories, each a valid definition built only
from the step types of SPEC §6, with inputs declared in a valid input_schema."""
import pytest

from wf_gateway.domain.builtin_templates import BUILTIN_BY_ID, builtin_templates
from wf_gateway.domain.validation import STEP_TYPES, validate_definition

TEMPLATES = builtin_templates()


def test_at_least_eight_across_several_categories():
    assert len(TEMPLATES) >= 8
    assert len({t["category"] for t in TEMPLATES}) >= 5
    assert len(BUILTIN_BY_ID) == len(TEMPLATES), "ids are unique"


@pytest.mark.parametrize("tpl", TEMPLATES, ids=[t["id"] for t in TEMPLATES])
def test_each_template_is_valid(tpl):
    assert tpl["id"].startswith("tpl_") and tpl["is_builtin"] is True
    assert set(tpl) == {"id", "name", "description", "category", "is_builtin", "definition", "created_at"}
    assert validate_definition(tpl["definition"]) == []
    types = {s["type"] for s in tpl["definition"]["steps"]}
    types |= {s["config"]["step"]["type"] for s in tpl["definition"]["steps"] if s["type"] == "loop"}
    assert types <= set(STEP_TYPES)
    assert tpl["definition"]["input_schema"]["required"], "endpoints come from input_data"


def test_every_step_type_is_used_somewhere():
    used = {s["type"] for t in TEMPLATES for s in t["definition"]["steps"]}
    assert used == set(STEP_TYPES)


def test_callers_get_copies():
    first = builtin_templates()
    first[0]["definition"]["name"] = "changed"
    assert builtin_templates()[0]["definition"]["name"] != "changed"
