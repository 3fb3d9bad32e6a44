"""Numbers and tables for people (check messages, markdown summaries, the dashboard) and floats for JSON.

* `fmt`: one number as text, '–' when it is missing or not finite, parameterized so every caller
  keeps its format (`.4g`, `.3g`, `+.4f`, ...).
* `json_float`: a float, or None where JSON has no number (None, NaN, ±inf, text).
* `markdown_table`: a GitHub-flavoured markdown table whose cell text is escaped, so names such as
  `__score__`, `a*b` or `x|y` show literally in the Dagster UI instead of as bold text or extra cells.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

MISSING = "–"  # en dash: the text of a missing number

_MARKDOWN_SPECIAL = re.compile(r"([\\|*_`<>\[\]])")
_NEWLINES = re.compile(r"\r\n|\r|\n")
# what `escape_prose` escapes: markup characters, and underscores not between two letters or digits
_PROSE_SPECIAL = re.compile(r"[\\|*`<>\[\]]|(?<![^\W_])_|_(?![^\W_])")


# --------------------------------------------------------------------------- numbers


def is_missing(value: Any) -> bool:
    """True for None, pandas NA, NaT and NaN (what ``pd.isna`` calls missing); False for anything
    ``pd.isna`` cannot judge as one value (lists, arrays of several values)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def fmt(
    value: Any,
    digits: int = 4,
    *,
    style: str = "g",
    sign: bool = False,
    missing: str = MISSING,
    infinity: tuple[str, str] | None = None,
    ints: bool = False,
    grouping: bool = False,
) -> str:
    """One number as text for people.

    value: anything ``float()`` accepts; other values (text, ...) are shown as ``str(value)``.
    digits, style: the format ``f"{x:.{digits}{style}}"``: "g" (default) for significant digits,
        "f" for digits after the decimal point.
    sign: always show the sign (``+0.0123``).
    missing: the text for None, NA, NaT and NaN, and for ±inf unless `infinity` is given.
    infinity: the texts of +inf and -inf, e.g. ``("∞", "−∞")``.
    ints: integer-typed values (int, numpy integers; not bool) are shown in full as ``str(value)``.
    grouping: an integral value below 1e9 in magnitude is shown whole with thousands separators
        (``12,345``), unless `sign` is set.

    >>> fmt(0.123456), fmt(None), fmt(float("nan")), fmt(1 / 3, 3, style="f", sign=True)
    ('0.1235', '–', '–', '+0.333')
    """
    if is_missing(value):
        return missing
    if ints and isinstance(value, int | np.integer) and not isinstance(value, bool):
        return str(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(number):
        return missing
    if math.isinf(number):
        if infinity is None:
            return missing
        return infinity[0] if number > 0 else infinity[1]
    if grouping and not sign and number.is_integer() and abs(number) < 1e9:
        return f"{int(number):,}"
    return f"{number:{'+' if sign else ''}.{digits}{style}}"


def json_float(value: Any) -> float | None:
    """JSON-safe float: ``float(value)``, or None for None, NaN, ±inf and values that are not numbers."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# --------------------------------------------------------------------------- markdown


def escape_markdown(text: Any) -> str:
    r"""`text` as markdown that renders literally inside a table cell.

    Backslash-escapes ``\ | * _ ` < > [ ]`` (so ``__score__`` is not bold and a ``|`` does not end the
    cell) and turns line breaks into spaces (a table row is one line).
    """
    return _MARKDOWN_SPECIAL.sub(r"\\\1", _NEWLINES.sub(" ", str(text)))


def escape_prose(text: Any) -> str:
    r"""Plain `text` as markdown that renders literally, for a description the Dagster UI renders as
    markdown (asset, check and check-result descriptions).

    Like `escape_markdown`, but keeps line breaks, and an underscore inside a word (``credit_default``,
    ``min_n``), which CommonMark never reads as emphasis, stays as it is, so the text stays readable
    where it is not rendered; ``__score__`` still becomes ``\_\_score\_\_``.
    """
    return _PROSE_SPECIAL.sub(r"\\\g<0>", str(text))


def code_span(text: Any) -> str:
    """`text` as an inline code span (shown literally, in monospace): ``name`` -> `` `name` ``.

    A text containing backticks gets a longer fence, padded with spaces, as CommonMark requires.
    """
    text = str(text)
    if "`" not in text:
        return f"`{text}`"
    fence = "`" * (max(len(run) for run in re.findall(r"`+", text)) + 1)
    return f"{fence} {text} {fence}"


def cell_text(value: Any) -> str:
    """The default text of a markdown table cell: floats to 4 significant digits, None empty, else str."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def markdown_table(
    rows: Iterable[Mapping[str, Any] | Sequence[Any]],
    columns: Sequence[str],
    headers: Sequence[str] | Mapping[str, str] | None = None,
    formatters: Mapping[str, Callable[[Any], str]] | Callable[[Any], str] | None = None,
    markdown: Collection[str] = (),
) -> str:
    """A GitHub-flavoured markdown table, e.g. for ``CheckResult.metadata["summary"]``.

    rows: dicts (a missing key is None) or tuples/lists in the order of `columns`.
    columns: the columns to show, in order (the keys of dict rows).
    headers: the header labels, by position or by column; default the column names.
    formatters: per column (or one for every column) a function from the value to its text;
        default `cell_text` (floats to 4 significant digits, None empty).
    markdown: columns whose text is already markdown (a code span, a link): they are not escaped,
        only a ``|`` is escaped and line breaks become spaces. Every other cell and every header is
        escaped with `escape_markdown`.
    """
    if headers is None:
        labels = list(columns)
    elif isinstance(headers, Mapping):
        labels = [headers.get(c, c) for c in columns]
    else:
        labels = list(headers)
        if len(labels) != len(columns):
            raise ValueError(f"{len(labels)} headers for {len(columns)} columns")
    if formatters is None or isinstance(formatters, Mapping):
        per_column = formatters or {}
        shown = [per_column.get(c, cell_text) for c in columns]
    else:
        shown = [formatters] * len(columns)
    raw = [c in markdown for c in columns]

    def line(cells: Iterable[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    lines = [line(escape_markdown(label) for label in labels), "|" + "---|" * len(columns)]
    for row in rows:
        if isinstance(row, Mapping):
            values = [row.get(c) for c in columns]
        else:
            values = list(row)
            if len(values) != len(columns):
                raise ValueError(f"a row has {len(values)} values for {len(columns)} columns")
        cells = (
            _table_safe(show(v)) if is_raw else escape_markdown(show(v))
            for v, show, is_raw in zip(values, shown, raw, strict=True)
        )
        lines.append(line(cells))
    return "\n".join(lines)


def _table_safe(text: str) -> str:
    """Markdown text made safe inside a table cell: ``|`` escaped, line breaks as spaces."""
    return _NEWLINES.sub(" ", str(text)).replace("|", "\\|")
