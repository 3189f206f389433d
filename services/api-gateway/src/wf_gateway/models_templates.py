"""HTTP models of /api/workflows/templates (SPEC §7)."""
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from .models import Definition, Strict, Tag, TriggerType, WorkflowStatus

Category = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")]


class TemplateCreate(Strict):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    category: Category = "custom"
    definition: Definition


class Template(BaseModel):
    id: str
    name: str
    description: str
    category: str
    is_builtin: bool
    definition: Definition
    created_at: str


class TemplateCreated(BaseModel):
    id: str
    template: Template


class TemplateList(BaseModel):
    templates: list[Template]
    total: int


class InstallRequest(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200,
                             description="Name of the new workflow; default: the template's.")
    trigger_type: TriggerType = "manual"
    tags: list[Tag] = Field(default_factory=list, max_length=50)
    status: WorkflowStatus = "active"


class InstallResult(BaseModel):
    workflow_id: str
