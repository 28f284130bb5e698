"""Validation against the record contract in ../shared/schema (the tests' source of truth)."""
from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

SHARED = Path(os.environ.get("COLLECTOR_SHARED_DIR")
              or Path(__file__).resolve().parent.parent.parent / "shared")
SCHEMA_DIR = SHARED / "schema"
FIXTURES = SHARED / "fixtures"
_SCHEMA_OF = {"order_book": "order_book", "trade": "trade", "ticker": "ticker",
              "candle": "candle"}


@lru_cache(maxsize=None)
def _validator(name: str) -> Draft202012Validator:
    resources = []
    for path in SCHEMA_DIR.glob("*.schema.json"):
        doc = json.loads(path.read_text())
        resources.append((doc["$id"], Resource.from_contents(doc)))
    registry = Registry().with_resources(resources)
    schema = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text())
    return Draft202012Validator(schema, registry=registry)


def assert_valid(record_or_records) -> None:
    """Every record (or the error object) must satisfy its JSON Schema."""
    records = record_or_records if isinstance(record_or_records, list) else [record_or_records]
    for record in records:
        name = "error" if "err" in record else _SCHEMA_OF[record["type"]]
        errors = sorted(_validator(name).iter_errors(record), key=str)
        assert not errors, f"{name} record off the schema: {errors[0].message} in {record}"


def fixture_bytes(relative: str) -> bytes:
    return (FIXTURES / relative).read_bytes()
