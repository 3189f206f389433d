"""fold_workflow: the workflow object at any point of its history (time travel)."""
from datetime import datetime, timedelta, timezone

from wf_contracts import events as ev
from wf_contracts.envelope import Recorded
from wf_contracts.workflow_state import fold_workflow

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def rec(n, event):
    return Recorded(id=f"evt_{n}", seq=n, stream="wf_1", version=n, tenant="t", type=type(event).__struct_config__.tag,
                    event=event, actor="key_1", causation_id=None, correlation_id=None,
                    recorded_at=T0 + timedelta(minutes=n), hash="")


def test_fold_through_versions_status_and_delete():
    d1 = {"name": "one", "steps": [{"id": "a", "type": "wait", "config": {"duration_seconds": 1}}]}
    d2 = {**d1, "name": "two", "description": "second"}
    h = [rec(1, ev.WorkflowCreated(workflow_id="wf_1", definition=d1, tags=["x"])),
         rec(2, ev.WorkflowVersionAdded(workflow_id="wf_1", version=2, definition=d2, change_summary="c", tags=["y"])),
         rec(3, ev.WorkflowStatusChanged(workflow_id="wf_1", status="paused")),
         rec(4, ev.WorkflowDeleted(workflow_id="wf_1"))]
    assert fold_workflow([]) is None
    v1 = fold_workflow(h[:1])
    assert v1["version"] == 1 and v1["name"] == "one" and v1["tags"] == ["x"] and v1["status"] == "active"
    v2 = fold_workflow(h[:2])
    assert (v2["version"], v2["name"], v2["description"], v2["tags"]) == (2, "two", "second", ["y"])
    assert v2["created_at"] == "2026-01-01T00:01:00.000000Z" and v2["updated_at"] == "2026-01-01T00:02:00.000000Z"
    assert fold_workflow(h[:3])["status"] == "paused"
    assert fold_workflow(h) is None
