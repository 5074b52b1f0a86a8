"""django-q2 tasks of series: thin; the rows are the truth."""

from __future__ import annotations

from series import progress


def advance() -> int:
    """Scheduled every minute: move on every unfinished series (a lost finish's news)."""
    return progress.series_advance_open()
