"""NATS subject names. One JetStream stream (`WF`) holds them all; consumers filter."""

STREAM = "WF"
ALL = "wf.>"
ALL_EVENTS = "wf.evt.>"


def event_subject(stream: str, event_type: str) -> str:
    # '.' separates subject tokens, so the dotted event type is flattened.
    return f"wf.evt.{stream}.{event_type.replace('.', '_')}"


def stream_events(stream: str) -> str:
    return f"wf.evt.{stream}.>"


def events_of_type(event_type: str) -> str:
    return f"wf.evt.*.{event_type.replace('.', '_')}"


def result_subject(run_id: str, dispatch_id: str) -> str:
    # one subject per dispatch: a runner can ask the stream whether that dispatch was answered
    return f"wf.result.{run_id}.{dispatch_id}"


RESULTS = "wf.result.>"
DISPATCHES = events_of_type("step.dispatched")
