"""Removing what a read model left behind once it is no longer registered.

A changed read model gets a new name and is filled beside the old one.
When nothing reads the old one any more, it leaves the registry, and its
tables and position row stay until `drop_retired` removes them. Every
read model's tables start with its name and an underscore, and a rebuild
copy's with `rebuild_` before that, which is how the tables are found.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from domain.errors import InvalidRequestError, NotFoundError
from projections.database import Database
from projections.projection import Projection
from projections.projector import POSITIONS_TABLE
from projections.rebuild import COPY_PREFIX, COPY_SUFFIX

# A read model's name ends in its version, so the prefix `audit_v1_` of
# the tables of `audit_v1` does not match those of `audit_v10`.
READ_MODEL_NAME = re.compile(r"[a-z][a-z0-9_]*_v[0-9]+")


def drop_retired(database: Database, registered: Sequence[Projection], name: str) -> list[str]:
    """Drop the tables of the unregistered read model `name` and forget its positions.

    Its rebuild copy goes too. Returns the dropped tables, sorted. Raises
    InvalidRequestError for a registered read model or a name that no
    read model can have, and NotFoundError when the database contains
    neither tables nor a position of `name`.

    The model's lock is held meanwhile, so a process that still runs an
    earlier release with the model registered cannot be in the middle of
    a batch. Such a process fails its next batch, so retire a model only
    once every process runs without it.
    """
    if not READ_MODEL_NAME.fullmatch(name):
        raise InvalidRequestError(
            f"Invalid read model name {name!r}: expected a name such as 'releases_v1'."
        )
    if any(projection.name == name for projection in registered):
        raise InvalidRequestError(
            f"Read model {name!r} is registered. Remove it from projections/registry.py"
            " first, or rebuild it with 'release-ledger projections rebuild'."
        )
    registered_tables = {table for projection in registered for table in projection.tables}
    registered_tables |= {COPY_PREFIX + table for table in registered_tables}
    prefixes = (f"{name}_", f"{COPY_PREFIX}{name}_")
    with database.transaction(write=True) as cursor:
        database.lock(cursor, name)
        tables = sorted(
            table for table in database.table_names(cursor)
            if table.startswith(prefixes) and table not in registered_tables
        )
        positions = cursor.execute(
            f"SELECT name FROM {POSITIONS_TABLE} WHERE name IN (%s, %s)",
            (name, name + COPY_SUFFIX),
        ).fetchall()
        if not tables and not positions:
            raise NotFoundError(f"Read model {name!r} has no tables and no position here.")
        for table in tables:
            cursor.execute(f'DROP TABLE IF EXISTS "{table}"')
        cursor.execute(
            f"DELETE FROM {POSITIONS_TABLE} WHERE name IN (%s, %s)", (name, name + COPY_SUFFIX)
        )
    return tables
