"""CancelWatch: which running steps a cancel event stops (the NATS side is in the integration tests)."""
from types import SimpleNamespace

import pytest

from tests.unit.test_runner_execute import recorded
from wf_contracts import codec, events as ev
from wf_runner.cancels import CancelWatch


def msg(event: ev.Event, run_id: str, seq: int) -> SimpleNamespace:
    tag = event.__struct_config__.tag.replace(".", "_")
    return SimpleNamespace(subject=f"wf.evt.{run_id}.{tag}", data=codec.encode(recorded(event, run_id, seq=seq)))


@pytest.mark.parametrize("event", [ev.RunCancelled(run_id="run_1"), ev.RunCancelRequested(run_id="run_1")])
async def test_run_cancel_stops_every_step_of_that_run_only(event):
    w = CancelWatch(None)
    a, b, other = w.track("run_1", "a", 10), w.track("run_1", "b", 11), w.track("run_2", "a", 12)
    await w._on_msg(msg(event, "run_1", 20))
    assert a.is_set() and b.is_set() and not other.is_set()


async def test_step_cancel_stops_that_step_and_its_loop_iterations():
    w = CancelWatch(None)
    a, a3, ab, b = (w.track("run_1", s, 10) for s in ("a", "a[3]", "ab", "b"))
    await w._on_msg(msg(ev.StepCancelled(run_id="run_1", step_id="a"), "run_1", 20))
    assert a.is_set() and a3.is_set() and not ab.is_set() and not b.is_set()


async def test_a_cancel_never_stops_a_later_dispatch():
    w = CancelWatch(None)
    await w._on_msg(msg(ev.StepCancelled(run_id="run_1", step_id="a"), "run_1", 20))
    assert not w.track("run_1", "a", 25).is_set()        # a new attempt after the cancel
    assert w.track("run_1", "a", 15).is_set()            # the dispatch the cancel was about, arriving late
    late = w.track("run_1", "b", 30)
    await w._on_msg(msg(ev.RunCancelled(run_id="run_1"), "run_1", 21))   # a repeat of an old cancel
    assert not late.is_set()


async def test_undecodable_run_cancel_still_cancels_and_untrack_forgets():
    w = CancelWatch(None)
    a = w.track("run_1", "a", 10)
    w.untrack("run_1", "a", 10)
    b = w.track("run_1", "b", 11)
    await w._on_msg(SimpleNamespace(subject="wf.evt.run_1.run_cancelled", data=b"garbage"))
    await w._on_msg(SimpleNamespace(subject="wf.evt.run_1.step_cancelled", data=b"garbage"))
    assert b.is_set() and not a.is_set() and w._active["run_1"].keys() == {("b", 11)}


async def test_memory_is_bounded():
    w = CancelWatch(None, memory=3)
    for i in range(10):
        w.cancelled(f"run_{i}", None, 100)
    assert list(w._seen) == [("run_7", None), ("run_8", None), ("run_9", None)]
