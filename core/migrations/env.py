"""Alembic environment: the models' metadata, batch mode on SQLite, one engine from core.db."""

from __future__ import annotations

from alembic import context

from core.db import METADATA, make_engine
from core.models import import_all_models

import_all_models()
config = context.config
url = config.attributes["database_url"]
engine = make_engine(url)
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=METADATA,
        # SQLite cannot ALTER most things: batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
