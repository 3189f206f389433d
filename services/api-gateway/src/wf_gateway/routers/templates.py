"""/api/workflows/templates: list, get, add a tenant's own, install (SPEC §7)."""
from typing import Annotated

from fastapi import APIRouter, Query, Request

from .. import idempotency, templates, workflow_commands
from ..auth import Reader, Writer
from ..models_templates import (Category, InstallRequest, InstallResult, Template, TemplateCreate, TemplateCreated,
                                TemplateList)
from ..validation_gate import check_definition
from .params import IdempotencyKey, Limit, Offset, TemplateId

router = APIRouter(prefix="/api/workflows/templates", tags=["templates"])


@router.get("", response_model=TemplateList)
async def list_templates(request: Request, p: Reader, category: Annotated[Category | None, Query()] = None,
                         is_builtin: bool | None = None, limit: Limit = 50, offset: Offset = 0):
    """Builtin templates (visible to every tenant) first, then the tenant's own, newest first."""
    items, total = await templates.list_templates(request.app.state.rt.pool, p.tenant, category, is_builtin,
                                                  limit, offset)
    return {"templates": items, "total": total}


@router.post("", status_code=201, response_model=TemplateCreated)
async def add_template(request: Request, p: Writer, body: TemplateCreate, idempotency_key: IdempotencyKey = None):
    rt = request.app.state.rt
    check_definition(body.definition)

    async def create(key, h):
        return await templates.add(rt.log, p, body.name, body.description, body.category, body.definition, key, h)

    tpl_id, _ = await idempotency.create_once(rt.pool, p.tenant, "template.create", idempotency_key,
                                              body.model_dump(), create)
    return {"id": tpl_id, "template": await templates.get(rt.pool, p.tenant, tpl_id)}


@router.get("/{template_id:tpl_id}", response_model=Template)
async def get_template(request: Request, p: Reader, template_id: TemplateId):
    return await templates.get(request.app.state.rt.pool, p.tenant, template_id)


@router.post("/{template_id:tpl_id}/install", status_code=201, response_model=InstallResult)
async def install_template(request: Request, p: Writer, template_id: TemplateId, body: InstallRequest | None = None,
                           idempotency_key: IdempotencyKey = None):
    """Create a workflow from the template's definition (renamed when `name` is given)."""
    rt = request.app.state.rt
    body = body or InstallRequest()
    tpl = await templates.get(rt.pool, p.tenant, template_id)
    definition = workflow_commands.named(tpl["definition"], body.name)
    check_definition(definition)
    scope = f"template.install:{template_id}"

    async def create(key, h):
        return await workflow_commands.create(rt.log, p, definition, body.status, body.trigger_type, body.tags,
                                              key, h, scope=scope, template_id=template_id)

    wf_id, _ = await idempotency.create_once(rt.pool, p.tenant, scope, idempotency_key, body.model_dump(), create)
    return {"workflow_id": wf_id}
