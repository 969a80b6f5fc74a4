"""Migrations build the whole schema from an empty database, with no drift from the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from core.db import METADATA, make_engine
from core.migrate import upgrade
from core.models import import_all_models


def test_upgrade_empty_database_matches_models(database_url: str) -> None:
    upgrade(database_url)
    import_all_models()
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            drift = compare_metadata(context, METADATA)
            tables = set(inspect(connection).get_table_names())
        assert drift == [], f"models and migrations differ: {drift}"
        assert set(METADATA.tables) <= tables
    finally:
        engine.dispose()


def test_upgrade_twice_is_a_no_op(database_url: str) -> None:
    upgrade(database_url)
    upgrade(database_url)
