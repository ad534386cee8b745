"""One grading as a standalone HTML page: verdict, checks, and the charts people would rather look at.

The page is a single file with inline CSS and SVG (no script, nothing fetched),
so it can be mailed, attached to a ticket or served by the dashboard as is.
Charts come from ``GradeResult.charts``, which hidden checks fill through the
``record`` fixture: a *distribution* (latency samples against a target and a
baseline) or a *gauge* (accuracy against its gate, time used against a budget).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from grader.results import GradeResult

_TEMPLATES = Path(__file__).resolve().parent / "templates"
WIDTH, BAR_HEIGHT, HIST_HEIGHT, BINS = 640, 36, 160, 30


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    height: float
    y: float


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(_TEMPLATES), autoescape=True,
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
    )


def render_report(result: GradeResult, *, audience: str = "team") -> str:
    """The report as HTML. ``audience="candidate"`` shows only visible checks and no charts."""
    return _environment().get_template("report.html.j2").render(_context(result, audience))


def render_report_body(result: GradeResult, *, audience: str = "team",
                       code_links: dict[str, list[tuple[str, str]]] | None = None) -> str:
    """The same report without the document around it (``<div class="report">...</div>``), for a page
    that has its own: the dashboard. Styled by ``report_css()``; everything in it is escaped.
    ``code_links`` gives, by check name, ``(label, url)`` links shown under a failed check (the
    dashboard's: the candidate's function that the check called)."""
    context = _context(result, audience)
    for row in context["checks"]:
        row["links"] = (code_links or {}).get(row["name"], []) if row["status"] == "failed" else []
    return _environment().get_template("report_body.html.j2").render(context)


def report_css() -> str:
    """The report's style sheet (plain CSS, for a ``<style>`` element)."""
    return (_TEMPLATES / "report.css").read_text(encoding="utf-8")


def _context(result: GradeResult, audience: str) -> dict[str, Any]:
    charts = [] if audience == "candidate" else [_layout(chart) for chart in result.charts]
    charts.append(_layout({
        "kind": "gauge", "title": "grading time against the run's limit", "unit": "s",
        "value": result.duration_s, "threshold": float(result.limits.get("run_timeout_s", 0) or 0),
        "higher_is_better": False, "maximum": None, "check": "",
    }))
    return {
        "result": result, "checks": _check_rows(result, audience), "points": _points_bar(result, audience),
        "charts": charts, "width": WIDTH, "bar_height": BAR_HEIGHT, "hist_height": HIST_HEIGHT,
    }


def write_report(result: GradeResult, path: Path, *, audience: str = "team") -> None:
    path.write_text(render_report(result, audience=audience), encoding="utf-8")


def _check_rows(result: GradeResult, audience: str) -> list[dict[str, Any]]:
    """Every check for the team; for a candidate only the checks whose visibility is ``visible``."""
    return [
        {
            "number": test.number, "name": test.name, "gate": test.gate, "status": test.status,
            "outcome": test.outcome.replace("_", " "), "points": f"{test.score:g}/{test.max_score:g}",
            "description": test.description, "output": test.output, "duration_s": test.duration_s,
            "links": [],
        }
        for test in result.tests
        if audience == "team" or test.visibility == "visible"
    ]


def _points_bar(result: GradeResult, audience: str) -> list[dict[str, Any]]:
    """Each check's share of the maximum score, in check order, coloured by status (the candidate's: visible ones)."""
    shown = [test for test in result.tests if audience == "team" or test.visibility == "visible"]
    total = sum(test.max_score for test in shown) or 1.0
    segments, x = [], 0.0
    for test in shown:
        width = WIDTH * test.max_score / total
        segments.append({"x": x, "width": max(width - 1, 0.5), "status": test.status, "name": test.name,
                         "points": f"{test.score:g}/{test.max_score:g}"})
        x += width
    return segments


def _layout(chart: dict[str, Any]) -> dict[str, Any]:
    if chart.get("kind") == "distribution":
        return _distribution(chart)
    return _gauge(chart)


def _gauge(chart: dict[str, Any]) -> dict[str, Any]:
    value, threshold = float(chart["value"]), float(chart["threshold"])
    top = max(v for v in (value, threshold, float(chart.get("maximum") or 0.0), 1e-12) if math.isfinite(v)) * 1.1
    higher = bool(chart.get("higher_is_better", True))
    ok = value >= threshold if higher else value <= threshold
    return {
        **chart, "ok": ok, "value_x": WIDTH * max(value, 0.0) / top, "threshold_x": WIDTH * threshold / top,
        "caption": f"{_fmt(value)} {chart.get('unit', '')} ({'at least' if higher else 'at most'} "
                   f"{_fmt(threshold)} {chart.get('unit', '')})",
    }


def _distribution(chart: dict[str, Any]) -> dict[str, Any]:
    values = [float(v) for v in chart.get("values", [])]
    baseline = [float(v) for v in chart.get("baseline", [])]
    target = chart.get("target")
    everything = values + baseline + ([float(target)] if target is not None else [])
    if not values:
        return {**chart, "empty": True, "bars": [], "baseline_bars": [], "stats": "", "target_x": None}
    low, high = min(everything), max(everything)
    span = (high - low) or abs(high) or 1.0
    low, high = (low - 0.02 * span if low < 0 else max(0.0, low - 0.02 * span)), high + 0.02 * span

    def bars(samples: list[float]) -> list[Bar]:
        counts = [0] * BINS
        for sample in samples:
            counts[min(int((sample - low) / (high - low) * BINS), BINS - 1)] += 1
        peak = max(counts) or 1
        return [Bar(x=i * WIDTH / BINS, width=WIDTH / BINS - 1, height=HIST_HEIGHT * c / peak,
                    y=HIST_HEIGHT - HIST_HEIGHT * c / peak) for i, c in enumerate(counts) if c]

    def x_of(value: float) -> float:
        return WIDTH * (value - low) / (high - low)

    ordered = sorted(values)
    p50, p95 = statistics.median(ordered), ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    unit = chart.get("unit", "")
    return {
        **chart, "empty": False, "bars": bars(values), "baseline_bars": bars(baseline) if baseline else [],
        "target_x": x_of(float(target)) if target is not None else None,
        "p50_x": x_of(p50), "p95_x": x_of(p95),
        "stats": f"{len(values)} samples, median {_fmt(p50)} {unit}, p95 {_fmt(p95)} {unit}"
                 + (f"; {chart.get('baseline_label', 'baseline')} median {_fmt(statistics.median(baseline))} {unit}"
                    if baseline else "")
                 + (f"; target {_fmt(float(target))} {unit}" if target is not None else ""),
        "low": _fmt(low), "high": _fmt(high),
    }


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
