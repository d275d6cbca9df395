"""The evaluation report: metric tables, charts, and the files under ``<lakehouse>/reports/<run_id>/``."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape

import pandas as pd

from recsys.lakehouse.filesystems import resolve_filesystem
from recsys.reporting import svg

log = logging.getLogger(__name__)

# Column order of the metric table (metric names as in the metrics table).
METRIC_ORDER = ("ndcg", "hit_rate", "recall", "mrr", "map", "precision", "cold_recall", "coverage",
                "popularity_percentile", "log_popularity")


def metric_table(metrics: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """Model x ``metric@k`` (rows sorted by the first column, best first)."""
    rows = metrics[metrics["split"] == split]
    if rows.empty:
        return pd.DataFrame()
    rows = rows.assign(column=[f"{m}@{k}" for m, k in zip(rows["metric"], rows["k"], strict=True)])
    table = rows.pivot_table(index="model", columns="column", values="value", aggfunc="first")
    rank = {m: i for i, m in enumerate(METRIC_ORDER)}
    columns = sorted(table.columns, key=lambda c: (rank.get(c.split("@")[0], 99), int(c.split("@")[1])))
    table = table[columns]
    return table.sort_values(columns[0], ascending=False) if columns else table


SHORT_NAMES = {"hit_rate": "hr", "precision": "prec", "popularity_percentile": "pop_pct",
               "log_popularity": "log_pop"}


def compact_table(metrics: pd.DataFrame, k: int, split: str = "test") -> pd.DataFrame:
    """Model x metric at one K (short column names), for terminals; best NDCG first."""
    rows = metrics[(metrics["split"] == split) & (metrics["k"] == k)]
    if rows.empty:
        return pd.DataFrame()
    table = rows.pivot_table(index="model", columns="metric", values="value", aggfunc="first")
    columns = [m for m in METRIC_ORDER if m in table.columns]
    table = table[columns].rename(columns={m: f"{SHORT_NAMES.get(m, m)}@{k}" for m in columns})
    return table.sort_values(table.columns[0], ascending=False) if columns else table


def text_table(table: pd.DataFrame, index_name: str = "model") -> str:
    """Fixed-width text rendering (4 decimals)."""
    if table.empty:
        return "(no metrics)"
    headers = [index_name, *map(str, table.columns)]
    body = [[str(i), *[_fmt(v) for v in row]] for i, row in zip(table.index, table.to_numpy(), strict=True)]
    widths = [max(len(r[c]) for r in [headers, *body]) for c in range(len(headers))]
    lines = ["  ".join(h.ljust(w) if c == 0 else h.rjust(w) for c, (h, w) in enumerate(zip(headers, widths,
                                                                                            strict=True)))]
    lines += ["  ".join(v.ljust(w) if c == 0 else v.rjust(w) for c, (v, w) in enumerate(zip(r, widths,
                                                                                          strict=True)))
              for r in body]
    return "\n".join(lines)


def markdown_table(table: pd.DataFrame, index_name: str = "model") -> str:
    if table.empty:
        return "(no metrics)"
    lines = ["| " + " | ".join([index_name, *map(str, table.columns)]) + " |",
             "|" + "---|" * (len(table.columns) + 1)]
    lines += ["| " + " | ".join([str(i), *[_fmt(v) for v in row]]) + " |"
              for i, row in zip(table.index, table.to_numpy(), strict=True)]
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return "" if value != value else f"{value:.4f}"
    return str(value)


@dataclass
class ReportData:
    run_id: str
    metrics: pd.DataFrame
    model_version: str | None = None
    seconds: Mapping[str, float] = field(default_factory=dict)
    histograms: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    curves: Mapping[str, Sequence[tuple[float, float]]] = field(default_factory=dict)
    best_als: str | None = None
    notes: Sequence[str] = ()


def load_training_curves(artifact_path: str | None,
                         storage_options: Mapping[str, str] | None = None) -> dict[str, list[tuple[float, float]]]:
    """``loss_curve`` and ``val_ndcg_curve`` ([[step, value], ...]) from the model's ``metrics.json``."""
    if not artifact_path:
        return {}
    try:
        filesystem, path = resolve_filesystem(artifact_path, storage_options)
        with filesystem.open_input_stream(path.rstrip("/") + "/metrics.json") as stream:
            data = json.loads(stream.read().decode("utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("no training curves from %s: %s", artifact_path, exc)
        return {}
    curves = {}
    for key in ("loss_curve", "val_ndcg_curve"):
        points = data.get(key) or []
        curves[key] = [(float(p[0]), float(p[1])) for p in points if len(p) >= 2]
    return curves


def _charts(data: ReportData) -> list[tuple[str, str]]:
    charts = []
    table = metric_table(data.metrics)
    for metric in ("ndcg", "hit_rate", "recall"):
        cols = [c for c in table.columns if c.startswith(metric + "@")]
        if cols:
            series = {str(m): [float(table.loc[m, c]) for c in cols] for m in table.index}
            charts.append((f"{metric} by K", svg.grouped_bars(f"{metric} by K (test)", cols, series)))
    if data.curves.get("loss_curve"):
        charts.append(("training loss", svg.lines("training loss", {"loss": data.curves["loss_curve"]}, "step")))
    if data.curves.get("val_ndcg_curve"):
        charts.append(("validation NDCG during training",
                       svg.lines("validation NDCG", {"ndcg": data.curves["val_ndcg_curve"]}, "step")))
    score = data.histograms.get("score")
    if score is not None and not score.empty:
        edges = [*score["lo"].tolist(), float(score["hi"].iloc[-1])]
        counts = _dense_counts(score, len(edges) - 1)
        charts.append(("score distribution", svg.histogram("our model: recommendation scores", edges,
                                                           {"ours": counts})))
    pop = data.histograms.get("popularity")
    if pop is not None and not pop.empty:
        bins = int(pop["bin"].max()) + 1
        edges = [i / bins for i in range(bins + 1)]
        series = {str(m): _dense_counts(g, bins) for m, g in pop.groupby("model")}
        charts.append(("popularity distribution", svg.histogram(
            "popularity percentile of recommended items", edges, series)))
    return charts


def _dense_counts(frame: pd.DataFrame, bins: int) -> list[float]:
    counts = [0.0] * bins
    for b, c in zip(frame["bin"], frame["count"], strict=True):
        if 0 <= int(b) < bins:
            counts[int(b)] += float(c)
    return counts


def render_markdown(data: ReportData) -> str:
    lines = [f"# Evaluation report {data.run_id}", ""]
    if data.model_version:
        lines.append(f"Model version: `{data.model_version}`")
    if data.best_als:
        lines.append(f"ALS chosen on validation: `{data.best_als}`")
    lines += ["", "## Test split", "", markdown_table(metric_table(data.metrics, "test")), ""]
    val = metric_table(data.metrics, "validation")
    if not val.empty:
        lines += ["## Validation (baseline tuning)", "", markdown_table(val), ""]
    if data.seconds:
        lines += ["## Time to produce each model's lists", ""]
        lines += [f"- {name}: {sec:.1f}s" for name, sec in data.seconds.items()]
        lines.append("")
    lines += [f"- {n}" for n in data.notes]
    return "\n".join(lines) + "\n"


def render_html(data: ReportData) -> str:
    test = metric_table(data.metrics, "test")
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>recsys evaluation {escape(data.run_id)}</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child{text-align:left}</style>",
        f"</head><body><h1>Evaluation {escape(data.run_id)}</h1>",
    ]
    if data.model_version:
        parts.append(f"<p>Model version <code>{escape(data.model_version)}</code></p>")
    parts.append("<h2>Test split</h2>" + _html_table(test))
    val = metric_table(data.metrics, "validation")
    if not val.empty:
        parts.append("<h2>Validation (baseline tuning)</h2>" + _html_table(val))
    for title, chart in _charts(data):
        parts.append(f"<h3>{escape(title)}</h3>{chart}")
    parts += [f"<p>{escape(n)}</p>" for n in data.notes]
    parts.append("</body></html>")
    return "\n".join(parts)


def _html_table(table: pd.DataFrame) -> str:
    if table.empty:
        return "<p>(no metrics)</p>"
    head = "".join(f"<th>{escape(str(c))}</th>" for c in ["model", *table.columns])
    rows = "".join(
        "<tr>" + "".join(f"<td>{escape(v)}</td>" for v in [str(i), *[_fmt(x) for x in row]]) + "</tr>"
        for i, row in zip(table.index, table.to_numpy(), strict=True)
    )
    return f"<table><tr>{head}</tr>{rows}</table>"


def write_report(root: str, data: ReportData, storage_options: Mapping[str, str] | None = None) -> str:
    """Write ``report.html`` and ``summary.md`` under ``<root>/reports/<run_id>/``; return that directory."""
    directory = f"{root.rstrip('/')}/reports/{data.run_id}"
    filesystem, path = resolve_filesystem(directory, storage_options)
    filesystem.create_dir(path, recursive=True)
    for name, text in (("report.html", render_html(data)), ("summary.md", render_markdown(data))):
        with filesystem.open_output_stream(f"{path}/{name}") as out:
            out.write(text.encode("utf-8"))
    return directory
