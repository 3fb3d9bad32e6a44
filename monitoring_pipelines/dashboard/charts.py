"""Altair (Vega-Lite) charts of the dashboard: one small function per picture, data in, chart out.

Each function takes a frame already aggregated by DuckDB (one row per mark), with days as ISO
strings in a `day` column, and returns a `Figure` whose spec carries those rows (top-level
`datasets`) so the page needs no data files and no network. Days are read as UTC dates so a reader west of Greenwich
does not see every point one day early.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import altair as alt
import pandas as pd

BLUE = "#1f6feb"
ORANGE = "#d4760a"
GREY = "#6e7781"
RED = "#b42318"
AMBER = "#b7791f"

PANEL_WIDTH = 220
PANEL_HEIGHT = 120
WIDE_WIDTH = 860
WIDE_HEIGHT = 200
INPUT_LABEL_LIMIT = 220  # px: room for the model's own outputs, e.g. "predicted classes (prediction drift)"
ROWS_NAME = "rows"
ROWS = alt.NamedData(name=ROWS_NAME)  # every chart reads its rows from the spec's `datasets`


@dataclass(frozen=True)
class Figure:
    """A chart whose rows travel beside it, as the spec's top-level `datasets`.

    Keeping the rows out of the Altair objects lets Altair validate the (small) chart structure
    without walking every data row, which made large pages slow to build.
    """

    chart: alt.TopLevelMixin
    rows: pd.DataFrame

    def to_spec(self) -> dict[str, Any]:
        """The Vega-Lite spec with the dashboard's look (system fonts, quiet axes) and its rows embedded."""
        styled = (
            self.chart.configure(font="system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif")
            .configure_axis(labelFontSize=11, titleFontSize=11, titleColor=GREY, gridColor="#eaeef2")
            .configure_view(stroke="#d1d9e0")
        )
        spec = styled.to_dict()
        spec["datasets"] = {ROWS_NAME: records(self.rows)}
        return spec


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready rows: NaN becomes null, numpy scalars plain numbers (what Vega expects)."""
    return json.loads(frame.to_json(orient="records", double_precision=10))


def _day(frame: pd.DataFrame, band_position: float | None = None) -> alt.X:
    """The day axis with whole-day ticks spaced for the span shown (no '01 Jun 01 Jun' on short spans).

    `band_position=0.5` centres a mark in its day's band (points on a heat map).
    """
    days = pd.to_datetime(frame["day"], errors="coerce")
    span = int((days.max() - days.min()).days) + 1 if days.notna().any() else 1
    interval, step = (
        ("day", 1) if span <= 10 else ("day", 2) if span <= 21 else ("week", 1 if span <= 70 else 2)
    )
    extra = {} if band_position is None else {"bandPosition": band_position}
    return alt.X(
        "utcyearmonthdate(day):T",
        title=None,
        axis=alt.Axis(
            format="%d %b",
            labelAngle=0,
            labelOverlap=True,
            tickCount=alt.TimeIntervalStep(interval=interval, step=step),
        ),
        **extra,
    )


def _day_tooltip() -> alt.Tooltip:
    return alt.Tooltip("utcyearmonthdate(day):T", title="day", format="%Y-%m-%d")


def _facet(chart: alt.LayerChart, field: str, columns: int, order: list[str] | None = None) -> alt.FacetChart:
    """One panel per value of `field`, in `order` when given (else alphabetical), each with its own y scale."""
    return chart.facet(
        facet=alt.Facet(
            f"{field}:N",
            title=None,
            header=alt.Header(labelFontSize=12, labelFontWeight="bold"),
            sort=order or "ascending",
        ),
        columns=columns,
    ).resolve_scale(y="independent")


def _line_legend(title: str | None) -> alt.Legend:
    """A legend drawn as solid strokes even when a faint confidence band shares the colour."""
    return alt.Legend(title=title, orient="top", symbolType="stroke", symbolOpacity=1, symbolStrokeWidth=2.5)


def drift_overview_chart(frame: pd.DataFrame) -> Figure | None:
    """One row per input, one cell per day, coloured by how close its worst drift score came to the
    alert line (score ÷ threshold); black dots mark days the input was flagged drifted.

    Columns: day, feature_label, worst_ratio, worst_statistic, drifted, drifted_by.
    """
    if frame.empty:
        return None
    tooltip = [
        alt.Tooltip("feature_label:N", title="input"),
        _day_tooltip(),
        alt.Tooltip("worst_ratio:Q", title="worst score ÷ alert line", format=".2f"),
        alt.Tooltip("worst_statistic:N", title="worst statistic"),
        alt.Tooltip("drifted_by:N", title="flagged by"),
    ]
    cells = (
        alt.Chart()
        .mark_rect(stroke="#ffffff", strokeWidth=0.5)
        .encode(
            x=_day(frame),
            y=alt.Y("feature_label:N", title=None, axis=alt.Axis(labelLimit=INPUT_LABEL_LIMIT)),
            color=alt.Color(
                "worst_ratio:Q",
                scale=alt.Scale(
                    domain=[0, 0.5, 1, 1.5],
                    range=["#f1f5fb", "#9ecae1", AMBER, RED],
                    clamp=True,
                    interpolate="rgb",
                ),
                legend=alt.Legend(
                    title="score ÷ alert line",
                    orient="top",
                    gradientLength=160,
                    values=[0, 0.5, 1, 1.5],
                    format=".1f",
                ),
            ),
            tooltip=tooltip,
        )
    )
    flags = (
        alt.Chart()
        .transform_filter("datum.drifted === true")
        .mark_point(shape="circle", filled=True, color="#1f2328", size=22, opacity=1)
        .encode(
            x=_day(frame, band_position=0.5),
            y=alt.Y("feature_label:N", title=None, axis=alt.Axis(labelLimit=INPUT_LABEL_LIMIT)),
            tooltip=tooltip,
        )
    )
    chart = alt.layer(cells, flags, data=ROWS).properties(width=WIDE_WIDTH, height=alt.Step(20))
    return Figure(chart, frame)


def drift_chart(frame: pd.DataFrame, statistic: str) -> Figure | None:
    """Drift score per input over time against its alert line; red dots are days flagged drifted.

    Columns: day, feature_label, value, threshold, drifted, p_value, n_current.
    """
    if frame.empty:
        return None
    series = ["drift score", "alert line"]
    lines = (
        alt.Chart()
        .transform_fold(["value", "threshold"], as_=["series", "y"])
        .transform_calculate(series="datum.series === 'value' ? 'drift score' : 'alert line'")
        .mark_line(strokeWidth=1.8)
        .encode(
            x=_day(frame),
            y=alt.Y("y:Q", title=statistic),
            color=alt.Color(
                "series:N",
                scale=alt.Scale(domain=series, range=[BLUE, GREY]),
                legend=alt.Legend(title=None, orient="top"),
            ),
            strokeDash=alt.StrokeDash(
                "series:N", scale=alt.Scale(domain=series, range=[[1, 0], [5, 3]]), legend=None
            ),
        )
    )
    flagged = (
        alt.Chart()
        .transform_filter("datum.drifted === true")
        .mark_point(filled=True, size=45, color=RED, opacity=1)
        .encode(
            x=_day(frame),
            y=alt.Y("value:Q", title=statistic),
            tooltip=[
                alt.Tooltip("feature_label:N", title="input"),
                _day_tooltip(),
                alt.Tooltip("value:Q", title=statistic, format=".4g"),
                alt.Tooltip("threshold:Q", title="fairness line", format=".4g"),
                alt.Tooltip("p_value:Q", title="p-value", format=".3g"),
                alt.Tooltip("n_current:Q", title="rows that day"),
            ],
        )
    )
    hover = (
        alt.Chart()
        .mark_point(size=30, opacity=0)
        .encode(
            x=_day(frame),
            y=alt.Y("value:Q", title=statistic),
            tooltip=[
                alt.Tooltip("feature_label:N", title="input"),
                _day_tooltip(),
                alt.Tooltip("value:Q", title=statistic, format=".4g"),
                alt.Tooltip("threshold:Q", title="fairness line", format=".4g"),
                alt.Tooltip("drifted:N", title="drifted"),
            ],
        )
    )
    layered = alt.layer(lines, hover, flagged, data=ROWS).properties(width=PANEL_WIDTH, height=PANEL_HEIGHT)
    return Figure(_facet(layered, "feature_label", columns=4), frame)


UNTRUSTED = "estimate not trusted"  # the kind of estimated rows whose scores left the reference range


def _reference_band(facet: str | None) -> alt.Chart:
    """The reference period's usual range (mean ± k·σ of its daily values) as a grey band across the panel.

    Drawn from the rows' `band_low`/`band_high` columns (the same on every row of a metric), aggregated
    to one rectangle per panel so it spans the whole width whatever days have values.
    """
    groupby = [facet] if facet else []
    return (
        alt.Chart()
        .transform_filter("isValid(datum.band_low) && isValid(datum.band_high)")
        .transform_aggregate(band_low="min(band_low)", band_high="max(band_high)", groupby=groupby)
        .mark_rect(color="#8c959f", opacity=0.16)
        .encode(
            y=alt.Y("band_low:Q", title=None, scale=alt.Scale(zero=False)),
            y2="band_high:Q",
            tooltip=[
                alt.Tooltip("band_low:Q", title="usual range from", format=".4g"),
                alt.Tooltip("band_high:Q", title="usual range to", format=".4g"),
            ],
        )
    )


def metric_band_chart(
    frame: pd.DataFrame,
    facet: str | None,
    color_title: str = "",
    order: tuple[str, ...] = (),
    *,
    columns: int = 3,
    width: int = PANEL_WIDTH,
    height: int = PANEL_HEIGHT,
    percent: bool = False,
    y_title: str | None = None,
    legend: bool = True,
    facet_order: list[str] | None = None,
) -> Figure | None:
    """A value with its 95% confidence band per day, one colour per `kind`, one panel per `facet` value
    (a single panel when `facet` is None), over the reference band when the rows carry one.

    Columns: day, `facet`, kind, value, ci_low, ci_high, n (optional: labelled_fraction, band_low,
    band_high, trusted). Rows with `trusted` false are drawn as hollow grey points only, never joined
    into a line: an estimate the checks do not judge must not read as a measurement. `order` puts the
    kinds that matter most first (first colour, first in the legend).
    """
    if frame.empty:
        return None
    frame = frame.copy()
    if "trusted" in frame.columns:
        untrusted = frame["trusted"].astype("boolean").eq(False).fillna(False)
        frame.loc[untrusted, "kind"] = UNTRUSTED
        frame["trusted"] = ~untrusted
    else:
        frame["trusted"] = True
    present = set(frame["kind"].dropna())
    kinds = [k for k in order if k in present] + sorted(present - set(order) - {UNTRUSTED})
    if UNTRUSTED in present:
        kinds.append(UNTRUSTED)
    palette = [BLUE, ORANGE, GREY, RED][: max(len(kinds) - (UNTRUSTED in present), 1)]
    if UNTRUSTED in present:
        palette = [*palette, "#8c959f"]
    color = alt.Color(
        "kind:N",
        scale=alt.Scale(domain=kinds, range=palette),
        legend=_line_legend(color_title or None) if legend else None,
    )
    axis = alt.Axis(format="%") if percent else alt.Axis()
    fmt_value = ".2%" if percent else ".4g"
    y_value = alt.Y("value:Q", title=y_title, scale=alt.Scale(zero=False), axis=axis)
    band = (
        alt.Chart()
        .transform_filter("datum.trusted")
        .mark_area(opacity=0.18)
        .encode(
            x=_day(frame),
            y=alt.Y("ci_low:Q", title=y_title, scale=alt.Scale(zero=False), axis=axis),
            y2="ci_high:Q",
            color=color,
        )
    )
    tooltip = [
        alt.Tooltip("kind:N", title="kind"),
        _day_tooltip(),
        alt.Tooltip("value:Q", format=fmt_value),
        alt.Tooltip("ci_low:Q", title="95% CI low", format=fmt_value),
        alt.Tooltip("ci_high:Q", title="95% CI high", format=fmt_value),
        alt.Tooltip("n:Q", title="rows"),
    ]
    if facet:
        tooltip.insert(0, alt.Tooltip(f"{facet}:N", title="metric"))
    if "labelled_fraction" in frame.columns:
        tooltip.append(alt.Tooltip("labelled_fraction:Q", title="labelled", format=".0%"))
    if "note" in frame.columns:
        tooltip.append(alt.Tooltip("note:N", title="note"))
    line = (
        alt.Chart()
        .transform_filter("datum.trusted")
        .mark_line(point=alt.OverlayMarkDef(size=18, filled=True), strokeWidth=1.8)
        .encode(x=_day(frame), y=y_value, color=color, tooltip=tooltip)
    )
    untrusted_points = (
        alt.Chart()
        .transform_filter("!datum.trusted")
        .mark_point(shape="circle", filled=False, size=30, strokeWidth=1.2)
        .encode(x=_day(frame), y=y_value, color=color, tooltip=tooltip)
    )
    layers = [band, line, untrusted_points]
    if "band_low" in frame.columns and frame["band_low"].notna().any():
        layers.insert(0, _reference_band(facet))
    layered = alt.layer(*layers, data=ROWS).properties(width=width, height=height)
    if facet is None:
        return Figure(layered, frame)
    return Figure(_facet(layered, facet, columns=columns, order=facet_order), frame)


def subgroup_chart(frame: pd.DataFrame, segment: str) -> Figure | None:
    """Each group's metric over time (one line per segment value), one panel per metric.

    Columns: day, metric, segment_value, value, ci_low, ci_high, n, gap.
    """
    if frame.empty:
        return None
    line = (
        alt.Chart()
        .mark_line(point=alt.OverlayMarkDef(size=14, filled=True), strokeWidth=1.5)
        .encode(
            x=_day(frame),
            y=alt.Y("value:Q", title=None, scale=alt.Scale(zero=False)),
            color=alt.Color("segment_value:N", title=segment, legend=alt.Legend(orient="top")),
            tooltip=[
                alt.Tooltip("segment_value:N", title=segment),
                alt.Tooltip("metric:N"),
                _day_tooltip(),
                alt.Tooltip("value:Q", format=".4g"),
                alt.Tooltip("ci_low:Q", title="95% CI low", format=".4g"),
                alt.Tooltip("ci_high:Q", title="95% CI high", format=".4g"),
                alt.Tooltip("gap:Q", title="gap to overall", format=".4g"),
                alt.Tooltip("n:Q", title="rows"),
            ],
        )
    )
    layered = alt.layer(line, data=ROWS).properties(width=PANEL_WIDTH, height=PANEL_HEIGHT)
    return Figure(_facet(layered, "metric", columns=3), frame)


def gap_chart(frame: pd.DataFrame) -> Figure | None:
    """The largest gap between a group and the whole population, per segment, per metric, per day.

    Columns: day, metric, segment, largest_gap, worst_value (the group with that gap).
    """
    if frame.empty:
        return None
    line = (
        alt.Chart()
        .mark_line(point=alt.OverlayMarkDef(size=14, filled=True), strokeWidth=1.5)
        .encode(
            x=_day(frame),
            y=alt.Y("largest_gap:Q", title="largest gap"),
            color=alt.Color("segment:N", title="segment", legend=alt.Legend(orient="top")),
            tooltip=[
                alt.Tooltip("segment:N"),
                alt.Tooltip("worst_value:N", title="group"),
                alt.Tooltip("metric:N"),
                _day_tooltip(),
                alt.Tooltip("largest_gap:Q", title="largest gap", format=".4g"),
            ],
        )
    )
    layered = alt.layer(line, data=ROWS).properties(width=PANEL_WIDTH, height=PANEL_HEIGHT)
    return Figure(_facet(layered, "metric", columns=3), frame)


def fairness_chart(frame: pd.DataFrame) -> Figure | None:
    """Per-segment fairness summaries over time (one line per segment) against their fairness lines (the
    four-fifths ratio, the parity gaps): crossing one is a finding to review; alerts come from changes
    against the reference (docs/fairness.md).

    Columns: day, metric (a readable name), segment, value, ci_low, ci_high, n, threshold.
    """
    if frame.empty:
        return None
    line = (
        alt.Chart()
        .mark_line(point=alt.OverlayMarkDef(size=14, filled=True), strokeWidth=1.5)
        .encode(
            x=_day(frame),
            y=alt.Y("value:Q", title=None, scale=alt.Scale(zero=False)),
            color=alt.Color("segment:N", title="segment", legend=alt.Legend(orient="top")),
            tooltip=[
                alt.Tooltip("segment:N"),
                alt.Tooltip("metric:N"),
                _day_tooltip(),
                alt.Tooltip("value:Q", format=".4g"),
                alt.Tooltip("ci_low:Q", title="95% CI low", format=".4g"),
                alt.Tooltip("ci_high:Q", title="95% CI high", format=".4g"),
                alt.Tooltip("threshold:Q", title="fairness line", format=".4g"),
            ],
        )
    )
    rule = (
        alt.Chart()
        .transform_aggregate(threshold="max(threshold)", groupby=["metric"])
        .transform_filter("isValid(datum.threshold)")
        .mark_rule(color=GREY, strokeDash=[5, 3])
        .encode(y=alt.Y("threshold:Q", title=None))
    )
    layered = alt.layer(rule, line, data=ROWS).properties(width=PANEL_WIDTH, height=PANEL_HEIGHT)
    return Figure(_facet(layered, "metric", columns=4), frame)


def shadow_chart(frame: pd.DataFrame) -> Figure | None:
    """Shadow minus champion per metric per day with its confidence band; the grey line is 'no difference'.

    Columns: day, metric, pair, delta, ci_low, ci_high, champion_value, shadow_value, p_value, n.
    """
    if frame.empty:
        return None
    color = alt.Color("pair:N", title=None, legend=_line_legend(None))
    band = (
        alt.Chart()
        .mark_area(opacity=0.18)
        .encode(x=_day(frame), y=alt.Y("ci_low:Q", title=None), y2="ci_high:Q", color=color)
    )
    line = (
        alt.Chart()
        .mark_line(point=alt.OverlayMarkDef(size=18, filled=True), strokeWidth=1.8)
        .encode(
            x=_day(frame),
            y=alt.Y("delta:Q", title=None),
            color=color,
            tooltip=[
                alt.Tooltip("pair:N", title="comparison"),
                alt.Tooltip("metric:N"),
                _day_tooltip(),
                alt.Tooltip("champion_value:Q", title="champion", format=".4g"),
                alt.Tooltip("shadow_value:Q", title="shadow", format=".4g"),
                alt.Tooltip("delta:Q", title="shadow − champion", format="+.4g"),
                alt.Tooltip("ci_low:Q", title="95% CI low", format=".4g"),
                alt.Tooltip("ci_high:Q", title="95% CI high", format=".4g"),
                alt.Tooltip("p_value:Q", title="p-value", format=".3g"),
                alt.Tooltip("n:Q", title="requests"),
            ],
        )
    )
    zero = (
        alt.Chart()
        .transform_aggregate(rows="count()", groupby=["metric"])
        .mark_rule(color=GREY, strokeDash=[5, 3])
        .encode(y=alt.datum(0))
    )
    layered = alt.layer(zero, band, line, data=ROWS).properties(width=PANEL_WIDTH, height=PANEL_HEIGHT)
    return Figure(_facet(layered, "metric", columns=3), frame)


def _threshold_rules(levels: list[tuple[str, float]], field_title: str) -> alt.LayerChart:
    """Horizontal alert lines with a label at the right end, drawn from their own tiny data set."""
    data = alt.Data(values=[{"level": name, "y": value} for name, value in levels])
    colors = alt.Scale(domain=["warning", "critical"], range=[AMBER, RED])
    rule = (
        alt.Chart(data)
        .mark_rule(strokeDash=[5, 3], strokeWidth=1.3)
        .encode(y=alt.Y("y:Q", title=field_title), color=alt.Color("level:N", scale=colors, legend=None))
    )
    text = (
        alt.Chart(data)
        .mark_text(align="right", baseline="bottom", dx=-2, dy=-2, fontSize=11)
        .encode(
            y=alt.Y("y:Q", title=field_title),
            x=alt.value(WIDE_WIDTH),
            text=alt.Text("level:N"),
            color=alt.Color("level:N", scale=colors, legend=None),
        )
    )
    return alt.layer(rule, text)


def latency_chart(frame: pd.DataFrame, warning_ms: float, critical_ms: float) -> Figure | None:
    """p50/p95/p99 latency per day (solid champion, dashed shadow) against the p99 alert lines.

    Columns: day, role, p50, p95, p99 (milliseconds).
    """
    if frame.empty:
        return None
    line = (
        alt.Chart(ROWS)
        .transform_fold(["p50", "p95", "p99"], as_=["percentile", "latency_ms"])
        .mark_line(point=alt.OverlayMarkDef(size=14, filled=True), strokeWidth=1.8)
        .encode(
            x=_day(frame),
            y=alt.Y("latency_ms:Q", title="latency (ms)"),
            color=alt.Color(
                "percentile:N",
                scale=alt.Scale(domain=["p50", "p95", "p99"], range=["#54aeff", BLUE, "#0a3069"]),
                legend=alt.Legend(title="percentile", orient="top", symbolType="stroke"),
            ),
            strokeDash=alt.StrokeDash(
                "role:N",
                scale=alt.Scale(domain=["champion", "shadow"], range=[[1, 0], [4, 3]]),
                legend=None,  # said in words beside the chart: a legend of dash patterns drew no symbol
            ),
            detail="role:N",
            tooltip=[
                alt.Tooltip("role:N"),
                alt.Tooltip("percentile:N"),
                _day_tooltip(),
                alt.Tooltip("latency_ms:Q", title="ms", format=".1f"),
            ],
        )
    )
    rules = _threshold_rules([("warning", warning_ms), ("critical", critical_ms)], "latency (ms)")
    chart = alt.layer(line, rules).properties(width=WIDE_WIDTH, height=WIDE_HEIGHT)
    return Figure(chart.resolve_scale(color="independent"), frame[["day", "role", "p50", "p95", "p99"]])


def error_rate_chart(frame: pd.DataFrame, warning: float, critical: float) -> Figure | None:
    """Share of failed requests per day per role against the error-rate alert lines.

    Columns: day, role, error_rate, errors, requests.
    """
    if frame.empty:
        return None
    line = (
        alt.Chart(ROWS)
        .mark_line(point=alt.OverlayMarkDef(size=14, filled=True), strokeWidth=1.8)
        .encode(
            x=_day(frame),
            y=alt.Y("error_rate:Q", title="failed requests", axis=alt.Axis(format="%")),
            color=alt.Color(
                "role:N",
                scale=alt.Scale(domain=["champion", "shadow"], range=[BLUE, ORANGE]),
                legend=alt.Legend(title="role", orient="top"),
            ),
            tooltip=[
                alt.Tooltip("role:N"),
                _day_tooltip(),
                alt.Tooltip("error_rate:Q", title="error rate", format=".2%"),
                alt.Tooltip("errors:Q", title="errors"),
                alt.Tooltip("requests:Q", title="requests"),
            ],
        )
    )
    rules = _threshold_rules([("warning", warning), ("critical", critical)], "failed requests")
    chart = alt.layer(line, rules).properties(width=WIDE_WIDTH, height=WIDE_HEIGHT)
    return Figure(
        chart.resolve_scale(color="independent"), frame[["day", "role", "error_rate", "errors", "requests"]]
    )


def requests_chart(frame: pd.DataFrame) -> Figure | None:
    """Requests per day per role: context for the latency and error lines (a quiet day is noisier).

    Columns: day, role, requests.
    """
    if frame.empty:
        return None
    chart = (
        alt.Chart(ROWS)
        .mark_line(point=alt.OverlayMarkDef(size=14, filled=True), strokeWidth=1.8)
        .encode(
            x=_day(frame),
            y=alt.Y("requests:Q", title="requests"),
            color=alt.Color(
                "role:N",
                scale=alt.Scale(domain=["champion", "shadow"], range=[BLUE, ORANGE]),
                legend=alt.Legend(title="role", orient="top"),
            ),
            tooltip=[alt.Tooltip("role:N"), _day_tooltip(), alt.Tooltip("requests:Q", format=",")],
        )
        .properties(width=WIDE_WIDTH, height=140)
    )
    return Figure(chart, frame[["day", "role", "requests"]])


def confusion_chart(frame: pd.DataFrame, classes: list[str]) -> Figure | None:
    """One day's confusion matrix as a heat map: rows the observed class, columns the predicted one, each
    cell coloured by its share of the observed class's rows (the diagonal is the class's recall) and
    labelled with its count.

    Columns: observed_class, predicted_class, n, row_share.
    """
    if frame.empty:
        return None
    rows = frame[["observed_class", "predicted_class", "n", "row_share"]]
    size = min(max(44 * len(classes), 160), 420)
    tooltip = [
        alt.Tooltip("observed_class:N", title="observed"),
        alt.Tooltip("predicted_class:N", title="predicted"),
        alt.Tooltip("n:Q", title="rows", format=","),
        alt.Tooltip("row_share:Q", title="share of the observed class", format=".1%"),
    ]
    x = alt.X(
        "predicted_class:N",
        sort=classes,
        title="predicted class",
        axis=alt.Axis(labelAngle=-30, orient="top"),
    )
    y = alt.Y("observed_class:N", sort=classes, title="observed class (label)")
    cells = (
        alt.Chart()
        .mark_rect(stroke="#ffffff", strokeWidth=1)
        .encode(
            x=x,
            y=y,
            color=alt.Color(
                "row_share:Q",
                scale=alt.Scale(domain=[0, 1], range=["#f6f8fa", "#0a3069"]),
                legend=alt.Legend(title="share of the observed class", orient="right", format=".0%"),
            ),
            tooltip=tooltip,
        )
    )
    text = (
        alt.Chart()
        .mark_text(fontSize=11)
        .encode(
            x=x,
            y=y,
            text=alt.Text("n:Q", format=","),
            color=alt.condition("datum.row_share > 0.5", alt.value("#ffffff"), alt.value("#1f2328")),
            tooltip=tooltip,
        )
    )
    chart = alt.layer(cells, text, data=ROWS).properties(width=size, height=size)
    return Figure(chart, rows)
