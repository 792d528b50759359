"""A run folder: results.json (everything measured, for ``loadtest.compare`` and for
re-analysis), summary.md, report.html and charts/*.png."""

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from loadtest.analysis import summarise
from loadtest.calibration import ENGINE_STAGES
from loadtest.cost import FunctionConfig, Prices
from loadtest.image_rows import ImageRow, image_rows
from loadtest.report.charts import render_charts
from loadtest.report.html import html_report
from loadtest.report.markdown import markdown
from loadtest.run import RunData
from loadtest.stats import throughput_series
from loadtest.summary import Summary
from loadtest.workload import Source

RESULTS_VERSION = 1


def write_reports(
    data: RunData,
    out: Path,
    config: FunctionConfig,
    prices: Prices | None = None,
    pool: Sequence[Source] = (),
) -> Summary:
    out.mkdir(parents=True, exist_ok=True)
    rows = image_rows(data)
    summary = summarise(data, rows, config, prices)
    charts = render_charts(rows, summary, data.timeseries)
    chart_dir = out / "charts"
    chart_dir.mkdir(exist_ok=True)
    for name, png in charts.items():
        (chart_dir / f"{name}.png").write_bytes(png)
    results = results_document(data, rows, summary, pool)
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str), "utf-8")
    (out / "summary.md").write_text(markdown(summary), "utf-8")
    (out / "report.html").write_text(html_report(summary, charts), "utf-8")
    return summary


def results_document(
    data: RunData, rows: Sequence[ImageRow], summary: Summary, pool: Sequence[Source]
) -> dict[str, Any]:
    return {
        "version": RESULTS_VERSION,
        "summary": summary.to_dict(),
        "images": [row.to_dict() for row in rows],
        "timeseries": [asdict(sample) for sample in data.timeseries],
        "throughput_series": [asdict(entry) for entry in throughput_series(rows)],
        "calls": asdict(data.calls),
        "options": asdict(data.options),
        "target": asdict(data.target),
        "pool": [
            {
                "path": str(s.path),
                "size_class": s.size_class,
                "format": s.fmt,
                "width": s.width,
                "height": s.height,
                "bytes": s.nbytes,
                "engine_ms": s.engine_ms,
            }
            for s in pool
        ],
        "engine_stages": list(ENGINE_STAGES),
    }
