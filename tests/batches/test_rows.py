"""CSV rows as spreadsheets export them: BOM, semicolons, quoted newlines, limits, encodings."""

from __future__ import annotations

import pytest

from batches import rows


def test_a_utf8_file_with_a_byte_order_mark_reads_its_first_column_by_name() -> None:
    data = "\ufeffproduct,season\nmug,summer\n".encode()

    sheet = rows.read(rows.decode(data))

    assert sheet.columns == ["product", "season"]
    assert sheet.rows == [{"product": "mug", "season": "summer"}]


def test_semicolons_separate_fields_when_the_header_uses_them() -> None:
    sheet = rows.read("product;price\nmug;3,50\nhat;12,00\n")

    assert sheet.rows == [{"product": "mug", "price": "3,50"}, {"product": "hat", "price": "12,00"}]


def test_quoted_fields_keep_their_newlines_commas_and_quotes() -> None:
    text = 'product,headline\r\nmug,"Line one\r\nline two, with a comma and ""quotes"""\r\n'

    sheet = rows.read(text)

    assert sheet.rows == [
        {"product": "mug", "headline": 'Line one\r\nline two, with a comma and "quotes"'}
    ]


def test_empty_lines_are_skipped_and_short_rows_padded() -> None:
    sheet = rows.read("a,b\n1\n\n,\n3,4\n")

    assert sheet.rows == [{"a": "1", "b": ""}, {"a": "3", "b": "4"}]


def test_a_row_with_more_cells_than_the_header_is_marked_not_dropped() -> None:
    sheet = rows.read("a,b\n1,2,3\n")

    assert sheet.problems == {0: "has 3 cells but the header names 2 columns"}


def test_exactly_ten_thousand_rows_are_read() -> None:
    text = "product\n" + "".join(f"p{i}\n" for i in range(10_000))

    assert len(rows.read(text).rows) == 10_000


def test_ten_thousand_and_one_rows_are_refused_with_the_limit_named() -> None:
    text = "product\n" + "".join(f"p{i}\n" for i in range(10_001))

    with pytest.raises(rows.RowsError) as refused:
        rows.read(text)

    assert refused.value.code == "csv_too_many_rows"
    assert "at most 10,000" in refused.value.message


def test_a_latin1_file_is_refused_and_told_how_to_save_utf8() -> None:
    data = "product\nCrème brûlée\n".encode("latin-1")

    with pytest.raises(rows.RowsError) as refused:
        rows.decode(data)

    assert refused.value.code == "csv_not_utf8"
    assert "CSV UTF-8" in refused.value.message


@pytest.mark.parametrize(
    ("text", "code"),
    [("", "csv_empty"), ("a,b\n", "csv_empty"), ("a,,b\n1,2,3\n", "csv_bad_header")],
)
def test_files_without_usable_rows_are_refused(text: str, code: str) -> None:
    with pytest.raises(rows.RowsError) as refused:
        rows.read(text)

    assert refused.value.code == code


def test_written_rows_read_back_the_same() -> None:
    original = [{"a": "x, y", "b": 'say "hi"\nthere'}]

    assert rows.read(rows.write(["a", "b"], original)).rows == original
