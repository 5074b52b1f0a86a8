"""Rows from a pasted or uploaded CSV, as spreadsheets export them. Plain Python (no Django).

Accepted: UTF-8 with or without a byte-order mark (Excel's "CSV UTF-8"), comma, semicolon
(Excel in locales that write decimal commas) or tab between fields, quoted fields with
commas, quotes and newlines inside. The first row names the columns.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

MAX_ROWS = 10_000
DELIMITERS = (",", ";", "\t")


class RowsError(ValueError):
    """The file cannot be read as rows; `code` is the API's machine code."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass
class Sheet:
    columns: list[str]
    rows: list[dict[str, str]]
    # Row index → what is wrong with its shape (more cells than the header names).
    problems: dict[int, str] = field(default_factory=dict)


def decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise RowsError(
            f"The file is not UTF-8 text (byte 0x{data[error.start]:02x} at position "
            f"{error.start:,} cannot be read). In Excel choose Save As → “CSV UTF-8 "
            "(Comma delimited)”; in Google Sheets, File → Download → CSV.",
            code="csv_not_utf8",
        ) from None


def delimiter(text: str) -> str:
    """The separator the header line uses most (outside quotes)."""
    header = text.split("\n", 1)[0]
    counts = {d: header.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def read(text: str, *, max_rows: int = MAX_ROWS) -> Sheet:
    """Columns and rows; fully empty lines are skipped. More than `max_rows` is refused."""
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise RowsError("There are no rows: paste or upload a CSV with a header row.", "csv_empty")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter(text))
    try:
        header = next(reader)
        columns = [name.strip() for name in header]
        _check_header(columns)
        sheet = Sheet(columns=columns, rows=[])
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            if len(sheet.rows) == max_rows:
                raise RowsError(
                    f"The file has more than {max_rows:,} rows; a batch holds at most "
                    f"{max_rows:,}. Split it into several files.",
                    "csv_too_many_rows",
                )
            if len(cells) > len(columns):
                sheet.problems[len(sheet.rows)] = (
                    f"has {len(cells)} cells but the header names {len(columns)} columns"
                )
            padded = cells + [""] * (len(columns) - len(cells))
            sheet.rows.append(dict(zip(columns, padded[: len(columns)], strict=True)))
    except csv.Error as error:
        raise RowsError(f"The CSV cannot be read: {error}.", "csv_invalid") from None
    if not sheet.rows:
        raise RowsError("The CSV has a header row but no rows under it.", "csv_empty")
    return sheet


def _check_header(columns: list[str]) -> None:
    if any(not name for name in columns):
        raise RowsError(
            "The header row has an empty column name; name every column.", "csv_bad_header"
        )
    repeated = sorted({name for name in columns if columns.count(name) > 1})
    if repeated:
        raise RowsError(
            f"The header row names {', '.join(repeated)} more than once.", "csv_bad_header"
        )


def write(columns: list[str], rows: list[dict[str, str]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
