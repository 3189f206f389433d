"""A workflow definition's state as a pure fold over its stream (for time travel, ?as_of=)."""
from typing import Any, Iterable

from . import events as ev
from .envelope import Recorded
from .timefmt import iso_z


def fold_workflow(events: Iterable[Recorded]) -> dict[str, Any] | None:
    """The SPEC §3 workflow object after these events; None before creation or after deletion."""
    wf: dict[str, Any] | None = None
    for rec in events:
        e = rec.event
        at = iso_z(rec.recorded_at)
        match e:
            case ev.WorkflowCreated():
                d = e.definition
                wf = {"id": e.workflow_id, "name": d.get("name", ""), "description": d.get("description", "") or "",
                      "version": 1, "status": e.status, "trigger_type": e.trigger_type, "tags": list(e.tags),
                      "definition": d, "created_at": at, "updated_at": at}
            case ev.WorkflowVersionAdded() if wf is not None:
                d = e.definition
                wf.update(version=e.version, definition=d, name=d.get("name", ""),
                          description=d.get("description", "") or "", updated_at=at)
                if e.trigger_type is not None:
                    wf["trigger_type"] = e.trigger_type
                if e.tags is not None:
                    wf["tags"] = list(e.tags)
            case ev.WorkflowStatusChanged() if wf is not None:
                wf.update(status=e.status, updated_at=at)
            case ev.WorkflowDeleted():
                wf = None
    return wf
