"""A page-number paginator that doesn't count a million rows to number its pages."""

from __future__ import annotations

import json
from typing import Any

from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.utils.functional import cached_property

EXACT_UP_TO = 10_000


def planner_rows(queryset: QuerySet[Any]) -> int:
    """PostgreSQL's estimate of the rows `queryset` returns, from EXPLAIN (no execution)."""
    text = queryset.order_by().explain(format="json")
    if not text:  # a query Django knows is empty (`.none()`, `pk__in=[]`) is not run
        return 0
    return int(json.loads(text)[0]["Plan"]["Plan Rows"])


class EstimatedCountPaginator(Paginator):
    """On PostgreSQL, asks the planner first: if it expects `EXACT_UP_TO` rows or more,
    its estimate is the count (`count_is_estimate` then says so); otherwise counts
    exactly, reading at most `EXACT_UP_TO + 1` rows (and estimates past that, had the
    planner guessed low).

    Django's Paginator runs `SELECT COUNT(*)` of the whole filtered list on every page,
    which at a million rows cost more than the page itself, and even a count bounded at
    10,000 rows cost 200 ms for a common search word. Elsewhere (SQLite, a laptop's
    data) the count stays exact.
    """

    count_is_estimate = False

    @cached_property
    def count(self) -> int:
        rows = self.object_list
        if not isinstance(rows, QuerySet) or connections[rows.db].vendor != "postgresql":
            return super().count
        estimate = planner_rows(rows)
        if estimate < EXACT_UP_TO:
            bounded = rows.order_by()[: EXACT_UP_TO + 1].count()
            if bounded <= EXACT_UP_TO:
                return bounded
            estimate = max(estimate, bounded)
        self.count_is_estimate = True
        return estimate


def search_by_id_or_text(
    queryset: QuerySet[Any], term: str, *, id_of: Any, text_field: str
) -> QuerySet[Any]:
    """An admin search that an index answers: a term `id_of` accepts (a UUID, a number)
    finds that row by primary key; any other term, the rows whose `text_field` contains
    it (a trigram index on PostgreSQL). Searching several columns at once OR-ed them,
    which no index serves, so every search read the whole table."""
    term = term.strip()
    if not term:
        return queryset
    try:
        return queryset.filter(pk=id_of(term))
    except (TypeError, ValueError):
        return queryset.filter(**{f"{text_field}__icontains": term})
