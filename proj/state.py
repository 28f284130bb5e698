"""Shared state: status snapshots and control commands every process can reach.

Redis (COLLECTOR_REDIS_URL) when there is one, so that status works from any machine;
otherwise JSON files under the data folder, for the embedded single-machine default.
Values are small JSON documents; writes replace a key whole (atomically in both backends), and
update() is a read-modify-write that no other process's update of the same key can interleave.
"""
from __future__ import annotations

import fcntl
import os
import time
import uuid
from pathlib import Path

import orjson

from . import settings

PREFIX = "collector:"


class FileState:
    def __init__(self, folder: Path):
        self.folder = folder
        (folder / "keys").mkdir(parents=True, exist_ok=True)
        (folder / "commands").mkdir(parents=True, exist_ok=True)

    def _key_path(self, key: str) -> Path:
        return self.folder / "keys" / (key.replace("/", "_") + ".json")

    def put(self, key: str, value: dict) -> None:
        path = self._key_path(key)
        partial = path.with_suffix(f".{uuid.uuid4().hex}.part")
        partial.write_bytes(orjson.dumps(value))
        os.replace(partial, path)   # readers see the old document or the new one, never half

    def get(self, key: str) -> dict | None:
        try:
            return orjson.loads(self._key_path(key).read_bytes())
        except (FileNotFoundError, orjson.JSONDecodeError):
            return None

    def update(self, key: str, change) -> dict:
        """put(key, change(get(key))) under an exclusive lock of the key's own lock file."""
        with open(self._key_path(key).with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            value = change(self.get(key))
            self.put(key, value)
            return value

    def get_prefix(self, prefix: str) -> dict[str, dict]:
        found = {}
        for path in (self.folder / "keys").glob(prefix.replace("/", "_") + "*.json"):
            value = self.get(path.stem)
            if value is not None:
                found[path.stem] = value
        return found

    def delete(self, key: str) -> None:
        self._key_path(key).unlink(missing_ok=True)

    def push_command(self, target: str, command: dict) -> None:
        folder = self.folder / "commands" / target
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns()}_{uuid.uuid4().hex[:8]}"
        (folder / f"{name}.part").write_bytes(orjson.dumps(command))
        os.replace(folder / f"{name}.part", folder / f"{name}.json")

    def pop_commands(self, target: str) -> list[dict]:
        folder = self.folder / "commands" / target
        commands = []
        for path in sorted(folder.glob("*.json")) if folder.exists() else []:
            claimed = path.with_suffix(f".{os.getpid()}.taken")
            try:
                os.replace(path, claimed)   # atomic: of two readers, one gets it
            except FileNotFoundError:
                continue
            try:
                commands.append(orjson.loads(claimed.read_bytes()))
            except orjson.JSONDecodeError:
                pass
            claimed.unlink(missing_ok=True)
        return commands


class RedisState:
    def __init__(self, url: str):
        import redis
        self.redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)

    def put(self, key: str, value: dict) -> None:
        self.redis.set(PREFIX + key, orjson.dumps(value))

    def get(self, key: str) -> dict | None:
        raw = self.redis.get(PREFIX + key)
        return orjson.loads(raw) if raw else None

    def update(self, key: str, change) -> dict:
        """put(key, change(get(key))) in a WATCH/MULTI transaction, tried again if another
        process wrote the key in between (change may run more than once)."""
        result = {}

        def attempt(pipe):
            raw = pipe.get(PREFIX + key)
            result["value"] = change(orjson.loads(raw) if raw else None)
            pipe.multi()
            pipe.set(PREFIX + key, orjson.dumps(result["value"]))

        self.redis.transaction(attempt, PREFIX + key)
        return result["value"]

    def get_prefix(self, prefix: str) -> dict[str, dict]:
        keys = sorted(self.redis.scan_iter(match=PREFIX + prefix + "*", count=500))
        values = self.redis.mget(keys) if keys else []
        return {k.decode()[len(PREFIX):]: orjson.loads(v) for k, v in zip(keys, values) if v}

    def delete(self, key: str) -> None:
        self.redis.delete(PREFIX + key)

    def push_command(self, target: str, command: dict) -> None:
        self.redis.rpush(f"{PREFIX}commands:{target}", orjson.dumps(command))

    def pop_commands(self, target: str) -> list[dict]:
        key = f"{PREFIX}commands:{target}"
        with self.redis.pipeline() as pipe:   # take all, atomically
            pipe.lrange(key, 0, -1)
            pipe.delete(key)
            raw, _ = pipe.execute()
        return [orjson.loads(item) for item in raw]


def open_state():
    url = settings.redis_url()
    return RedisState(url) if url else FileState(settings.data_dir() / "state")
