"""The exchanges: one module each, found by name, so that adding one touches nothing else."""
from __future__ import annotations

import importlib
import pkgutil

from ..records import CollectorError
from .base import Exchange

_NOT_EXCHANGES = {"base"}


def exchange_names() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__)
                  if m.name not in _NOT_EXCHANGES and not m.name.startswith("_"))


def get_exchange(name: str) -> Exchange:
    if name not in exchange_names():
        raise CollectorError("unsupported", f"unknown exchange {name!r} "
                             f"(known: {', '.join(exchange_names())})")
    return importlib.import_module(f"{__name__}.{name}").EXCHANGE
