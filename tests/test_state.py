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


def _add_one(entry):
    return {"n": (entry or {"n": 0})["n"] + 1}


def _bump(kind, folder, key, times):
    state = FileState(folder) if kind == "files" else RedisState("redis://127.0.0.1:6379/13")
    for _ in range(times):
        state.update(key, _add_one)


@pytest.mark.parametrize("kind", ["files", "redis"])
def test_updates_from_several_processes_are_never_lost(kind, tmp_path):
    import multiprocessing
    key = f"count-{uuid.uuid4().hex[:8]}"
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_bump, args=(kind, tmp_path / "state", key, 200))
                 for _ in range(3)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    state = FileState(tmp_path / "state") if kind == "files" else RedisState("redis://127.0.0.1:6379/13")
    assert state.get(key) == {"n": 600}
    state.delete(key)
