"""Formatting helpers (core.formatting): numbers for people, JSON-safe floats, and markdown tables whose
cell text renders literally (no bold `__score__`, no extra cell from a `|`)."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from monitoring_pipelines.core.formatting import (
    MISSING,
    cell_text,
    code_span,
    escape_markdown,
    fmt,
    is_missing,
    json_float,
    markdown_table,
)


def cells(line: str) -> list[str]:
    """The cells of one markdown table row, split as GitHub does: on `|` not preceded by a backslash."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


# --------------------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    "value", [None, math.nan, np.nan, np.float32("nan"), pd.NA, pd.NaT, math.inf, -np.inf]
)
def test_fmt_shows_missing_and_infinite_values_as_a_dash(value: object) -> None:
    assert fmt(value) == MISSING == "–"
    assert fmt(value, missing="n/a") == "n/a"


def test_fmt_significant_and_fixed_digits_as_the_callers_use_them() -> None:
    assert fmt(0.123456) == "0.1235"
    assert fmt(0.123456, 3) == "0.123"
    assert fmt(123456.0) == "1.235e+05"
    assert fmt(1e-7, 3) == "1e-07"
    assert fmt(np.float64(2.0)) == "2"
    assert fmt(1 / 3, 3, style="f") == "0.333"
    assert fmt(0.01234, style="f", sign=True) == "+0.0123"
    assert fmt(-0.01234, style="f", sign=True) == "-0.0123"
    assert fmt(0.0, sign=True) == "+0"
    assert fmt(-0.5) == "-0.5"


def test_fmt_reads_numbers_and_passes_text_through() -> None:
    assert fmt("0.25") == "0.25"
    assert fmt("not a number") == "not a number"
    assert fmt(True) == "1"
    assert fmt(np.int64(7)) == "7"


def test_fmt_options_for_integers_infinity_and_grouping() -> None:
    assert fmt(123456, 3) == "1.23e+05"
    assert fmt(123456, 3, ints=True) == "123456"
    assert fmt(np.int64(123456), 3, ints=True) == "123456"
    assert fmt(123456.0, 3, ints=True) == "1.23e+05"  # only integer types
    assert fmt(math.inf, infinity=("∞", "−∞")) == "∞"
    assert fmt(-math.inf, infinity=("∞", "−∞")) == "−∞"
    assert fmt(1234567.0, grouping=True) == "1,234,567"
    assert fmt(1234.5, grouping=True) == "1234"  # not integral: significant digits (.4g rounds half even)
    assert fmt(2e9, grouping=True) == "2e+09"
    assert fmt(1234.0, grouping=True, sign=True) == "+1234"


def test_is_missing_is_pandas_isna_for_one_value() -> None:
    assert all(is_missing(v) for v in (None, math.nan, pd.NA, pd.NaT, np.datetime64("NaT")))
    assert not any(is_missing(v) for v in (0, 0.0, "", "nan", [1, 2], math.inf))


@pytest.mark.parametrize(
    "value,expected",
    [
        (1.5, 1.5),
        (np.float64(2.25), 2.25),
        (3, 3.0),
        ("0.5", 0.5),
        (None, None),
        (math.nan, None),
        (math.inf, None),
        (-np.inf, None),
        (pd.NA, None),
        ("text", None),
    ],
)
def test_json_float(value: object, expected: float | None) -> None:
    out = json_float(value)
    assert out == expected and (out is None or type(out) is float)


# --------------------------------------------------------------------------- markdown


def test_escaping_keeps_names_literal() -> None:
    assert escape_markdown("__score__") == r"\_\_score\_\_"
    assert escape_markdown("age_band*sex") == r"age\_band\*sex"
    assert escape_markdown("65+|F") == r"65+\|F"
    assert escape_markdown(r"a\b `c` <d> [e]") == r"a\\b \`c\` \<d\> \[e\]"
    assert escape_markdown("two\nlines\r\nhere") == "two lines here"
    for text in ("__score__", "__all__", "a*b", "x|y", r"back\slash", "[link](url)", "<b>", "`code`"):
        assert unescape(escape_markdown(text)) == text


def test_code_span_fences_backticks() -> None:
    assert code_span("__score__") == "`__score__`"
    assert code_span("a`b") == "`` a`b ``"


def test_markdown_table_shape_and_default_cells() -> None:
    table = markdown_table(
        [{"metric": "auc", "value": 0.812345, "n": 12}, {"metric": "f1"}], ["metric", "value", "n"]
    )
    assert table.splitlines() == [
        "| metric | value | n |",
        "|---|---|---|",
        "| auc | 0.8123 | 12 |",
        "| f1 |  |  |",
    ]
    assert markdown_table([], ["a", "b"]) == "| a | b |\n|---|---|"
    assert cell_text(math.nan) == "nan" and cell_text(None) == "" and cell_text(3) == "3"


def test_markdown_table_escapes_names_so_they_are_not_bold() -> None:
    table = markdown_table(
        [{"feature": "__score__", "segment": "__all__", "value": 0.5}], ["feature", "segment", "value"]
    )
    row = table.splitlines()[2]
    assert "__score__" not in row and "__all__" not in row
    assert [unescape(c) for c in cells(row)] == ["__score__", "__all__", "0.5"]


def test_a_pipe_in_a_value_does_not_split_the_cell() -> None:
    table = markdown_table([("age_band*sex", "65+|F", 1.0)], ["segment", "segment_value", "ratio"])
    header, rule, row = table.splitlines()
    assert len(cells(header)) == len(cells(row)) == 3
    assert [unescape(c) for c in cells(row)] == ["age_band*sex", "65+|F", "1"]
    assert cells(header) == [r"segment", r"segment\_value", "ratio"]  # headers are escaped too


def test_markdown_table_headers_formatters_and_markdown_columns() -> None:
    rows = [(code_span("x|y"), "a_b", 0.123456, "https://example.org/issues/1")]
    table = markdown_table(
        rows,
        ["item", "title", "value", "tracker"],
        headers={"item": "Item"},
        formatters={"value": lambda v: fmt(v, 2)},
        markdown=("item", "tracker"),
    )
    header, _, row = table.splitlines()
    assert header == "| Item | title | value | tracker |"
    assert cells(row) == [r"`x\|y`", r"a\_b", "0.12", "https://example.org/issues/1"]
    by_position = markdown_table([(1, 2.0)], ["a", "b"], headers=["A", "B"], formatters=str)
    assert by_position.splitlines()[::2] == ["| A | B |", "| 1 | 2.0 |"]


def test_markdown_table_rejects_mismatched_rows_and_headers() -> None:
    with pytest.raises(ValueError):
        markdown_table([(1, 2, 3)], ["a", "b"])
    with pytest.raises(ValueError):
        markdown_table([], ["a", "b"], headers=["A"])
