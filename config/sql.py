"""Small SQL builders for the few statements the ORM cannot express."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

from django.db import connection, models, transaction


def insert_select(instance: models.Model) -> tuple[str, str, list[Any]]:
    """`instance` as the pieces of `INSERT INTO table (columns) SELECT values`: the table
    and column list, the select list (each value cast to its column's type, as nothing
    else tells PostgreSQL the type of a parameter in a select list) and the parameters.

    Values are prepared exactly as `Model.save()` prepares them (defaults, auto_now_add,
    JSON adaptation). PostgreSQL only.
    """
    fields, target, casts = _insert_select_sql(type(instance))
    params = [f.get_db_prep_save(f.pre_save(instance, add=True), connection) for f in fields]
    return target, casts, params


@functools.cache
def _insert_select_sql(model: type[models.Model]) -> tuple[list[models.Field[Any, Any]], str, str]:
    """The fields, table and column list, and cast list of `model`: built once per model."""
    meta = model._meta
    quote = connection.ops.quote_name
    fields = [f for f in meta.concrete_fields if not f.generated]
    target = f"{quote(meta.db_table)} ({', '.join(quote(str(f.column)) for f in fields)})"
    casts = []
    for field in fields:
        db_type = field.db_type(connection) or "text"
        # varchar(n) as text: an explicit cast would silently cut an over-long value,
        # where assigning text to the column refuses it.
        casts.append(f"CAST(%s AS {'text' if db_type.startswith('varchar') else db_type})")
    return fields, target, ", ".join(casts)


@contextlib.contextmanager
def without_jit() -> Iterator[None]:
    """Run the block's queries without PostgreSQL's JIT compilation (in a transaction,
    `jit` set off for the block only): a page's query whose estimated cost passes
    `jit_above_cost` (100,000: a few thousand rows with subplans) spends 100–300 ms
    compiling expressions to run it in a few milliseconds. Elsewhere, a no-op."""
    if connection.vendor != "postgresql":
        yield
        return
    with transaction.atomic(), connection.cursor() as cursor:
        # SET LOCAL lasts to the end of the outermost transaction, not the savepoint a
        # nested block is: the previous value is put back after the block.
        cursor.execute("SELECT current_setting('jit'), set_config('jit', 'off', true)")
        previous = cursor.fetchone()[0]
        try:
            yield
        finally:
            cursor.execute("SELECT set_config('jit', %s, true)", [previous])
