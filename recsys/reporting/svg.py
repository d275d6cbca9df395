"""Minimal inline-SVG charts (no plotting dependency): grouped bars, lines, histograms."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7")
W, H, PAD_L, PAD_B, PAD_T, PAD_R = 640, 300, 56, 40, 28, 150


def _frame(title: str, y_max: float, y_min: float = 0.0) -> list[str]:
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" '
             f'font-size="11"><text x="{W / 2}" y="16" text-anchor="middle" font-size="13">{escape(title)}</text>']
    x0, y0, y1 = PAD_L, H - PAD_B, PAD_T
    parts.append(f'<line x1="{x0}" y1="{y0}" x2="{W - PAD_R}" y2="{y0}" stroke="#333"/>')
    parts.append(f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="#333"/>')
    for i in range(5):
        v = y_min + (y_max - y_min) * i / 4
        y = y0 - (y0 - y1) * i / 4
        parts.append(f'<text x="{x0 - 4}" y="{y + 4:.1f}" text-anchor="end">{v:.3g}</text>')
        parts.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{W - PAD_R}" y2="{y:.1f}" stroke="#eee"/>')
    return parts


def _legend(names: Sequence[str]) -> list[str]:
    out = []
    for i, name in enumerate(names):
        y = PAD_T + 14 * i
        out.append(f'<rect x="{W - PAD_R + 10}" y="{y}" width="10" height="10" fill="{PALETTE[i % 8]}"/>')
        out.append(f'<text x="{W - PAD_R + 24}" y="{y + 9}">{escape(name)}</text>')
    return out


def _y(value: float, y_min: float, y_max: float) -> float:
    span = (y_max - y_min) or 1.0
    return (H - PAD_B) - (H - PAD_B - PAD_T) * (value - y_min) / span


def grouped_bars(title: str, groups: Sequence[str], series: Mapping[str, Sequence[float]]) -> str:
    """One group of bars per label in ``groups``; one bar (colour) per series."""
    y_max = max([v for vals in series.values() for v in vals] + [1e-9]) * 1.1
    parts = _frame(title, y_max)
    n_series = max(len(series), 1)
    group_w = (W - PAD_L - PAD_R) / max(len(groups), 1)
    bar_w = group_w * 0.8 / n_series
    for g, label in enumerate(groups):
        gx = PAD_L + g * group_w + group_w * 0.1
        for s, (_, values) in enumerate(series.items()):
            v = values[g]
            y = _y(v, 0.0, y_max)
            parts.append(f'<rect x="{gx + s * bar_w:.1f}" y="{y:.1f}" width="{bar_w * 0.95:.1f}" '
                         f'height="{H - PAD_B - y:.1f}" fill="{PALETTE[s % 8]}"><title>{v:.4f}</title></rect>')
        parts.append(f'<text x="{gx + group_w * 0.4:.1f}" y="{H - PAD_B + 14}" text-anchor="middle">'
                     f'{escape(label)}</text>')
    return "".join([*parts, *_legend(list(series)), "</svg>"])


def lines(title: str, series: Mapping[str, Sequence[tuple[float, float]]], x_label: str = "") -> str:
    """Polylines of (x, y) points, one per series."""
    points = [p for pts in series.values() for p in pts]
    if not points:
        return ""
    x_min, x_max = min(p[0] for p in points), max(p[0] for p in points)
    y_min, y_max = min(p[1] for p in points), max(p[1] for p in points)
    y_min, y_max = (y_min, y_max) if y_max > y_min else (y_min - 1, y_max + 1)
    parts = _frame(title, y_max, y_min)
    x_span = (x_max - x_min) or 1.0
    for s, pts in enumerate(series.values()):
        coords = " ".join(
            f"{PAD_L + (W - PAD_L - PAD_R) * (x - x_min) / x_span:.1f},{_y(y, y_min, y_max):.1f}" for x, y in pts
        )
        parts.append(f'<polyline fill="none" stroke="{PALETTE[s % 8]}" stroke-width="1.5" points="{coords}"/>')
    parts.append(f'<text x="{PAD_L}" y="{H - PAD_B + 14}">{x_min:g}</text>')
    parts.append(f'<text x="{W - PAD_R}" y="{H - PAD_B + 14}" text-anchor="end">{x_max:g} {escape(x_label)}</text>')
    return "".join([*parts, *_legend(list(series)), "</svg>"])


def histogram(title: str, edges: Sequence[float], series: Mapping[str, Sequence[float]]) -> str:
    """Step outlines of binned counts (normalised to shares), one per series; ``edges`` has bins + 1 values."""
    shares = {name: [c / (sum(counts) or 1) for c in counts] for name, counts in series.items()}
    y_max = max([v for vals in shares.values() for v in vals] + [1e-9]) * 1.1
    parts = _frame(title, y_max)
    lo, hi = edges[0], edges[-1]
    span = (hi - lo) or 1.0

    def x(v: float) -> float:
        return PAD_L + (W - PAD_L - PAD_R) * (v - lo) / span

    for s, vals in enumerate(shares.values()):
        coords = []
        for i, v in enumerate(vals):
            coords += [f"{x(edges[i]):.1f},{_y(v, 0, y_max):.1f}", f"{x(edges[i + 1]):.1f},{_y(v, 0, y_max):.1f}"]
        parts.append(f'<polyline fill="none" stroke="{PALETTE[s % 8]}" stroke-width="1.5" '
                     f'points="{" ".join(coords)}"/>')
    parts.append(f'<text x="{PAD_L}" y="{H - PAD_B + 14}">{lo:.3g}</text>')
    parts.append(f'<text x="{W - PAD_R}" y="{H - PAD_B + 14}" text-anchor="end">{hi:.3g}</text>')
    return "".join([*parts, *_legend(list(series)), "</svg>"])
