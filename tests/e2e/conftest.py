"""End-to-end fixtures: every service as its own process, with its own database and NATS server."""
import pytest

from tests.support.infra import nats_for_tests
from tests.support.stack import Stack
from tests.support.target import Target


@pytest.fixture
def target():
    with Target() as t:
        yield t


@pytest.fixture
def own_nats(tmp_path):
    with nats_for_tests(tmp_path / "nats") as n:
        yield n


@pytest.fixture
def stack_factory(tmp_path, fresh_db, own_nats):
    stacks = []

    def make(**kw) -> Stack:
        s = Stack(tmp_path, fresh_db, own_nats.url, **kw)
        stacks.append(s)
        return s

    yield make
    for s in stacks:
        s.stop()
