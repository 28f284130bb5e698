"""The exchanges: one module each, found by name, so that adding one touches nothing else."""
from __future__ import annotations

import functools
import importlib
import pkgutil

from ..records import CollectorError
from .base import Exchange

_NOT_EXCHANGES = {"base"}


@functools.cache   # the folder is read once a process: on every fetch it cost ~1 ms
def _discovered() -> tuple[str, ...]:
    return tuple(sorted(m.name for m in pkgutil.iter_modules(__path__)
                        if m.name not in _NOT_EXCHANGES and not m.name.startswith("_")))


def exchange_names() -> list[str]:
    return list(_discovered())


def get_exchange(name: str) -> Exchange:
    adapter = _adapters.get(name)
    if adapter is None:
        if name not in _discovered():
            raise CollectorError("unsupported", f"unknown exchange {name!r} "
                                 f"(known: {', '.join(_discovered())})")
        adapter = _adapters[name] = importlib.import_module(f"{__name__}.{name}").EXCHANGE
    return adapter


_adapters: dict[str, Exchange] = {}
