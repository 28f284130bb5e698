"""PostgreSQL and SQLite behind one small interface; idempotent writes.

    store = open_store("postgresql://..." or "sqlite:///abs/path/file.db")
    store.write(records) -> rows inserted or changed (one transaction, all or nothing)
    store.count(kind, **filters) -> int
    store.fetch(kind, exchange=None, symbol=None, limit=100) -> list of record dicts
    store.truncate(); store.close()

Imports nothing else of the project: stdlib and psycopg2 only.
"""
from .store import Store, open_store
from .tables import InvalidRecord

__all__ = ("InvalidRecord", "Store", "open_store")
