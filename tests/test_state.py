"""Shared state for status and control: files (embedded) and Redis behave alike."""
import uuid

import pytest

from proj.state import FileState, RedisState


@pytest.fixture(params=["files", "redis"])
def state(request, tmp_path):
    if request.param == "files":
        yield FileState(tmp_path / "state")
    else:
        yield RedisState("redis://127.0.0.1:6379/13")


def test_put_get_prefix_delete(state):
    key = f"test-{uuid.uuid4().hex[:8]}"
    state.put(f"{key}:a", {"n": 1})
    state.put(f"{key}:b", {"n": 2})
    state.put(f"{key}:a", {"n": 3})
    assert state.get(f"{key}:a") == {"n": 3}
    assert state.get_prefix(key) == {f"{key}:a": {"n": 3}, f"{key}:b": {"n": 2}}
    state.delete(f"{key}:a")
    assert state.get(f"{key}:a") is None


def test_commands_come_out_once_in_order(state):
    target = f"t-{uuid.uuid4().hex[:8]}"
    for i in range(3):
        state.push_command(target, {"i": i})
    assert state.pop_commands(target) == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert state.pop_commands(target) == []
