"""report.html: one self-contained page, the charts embedded as base64 PNG, rendered from
``template.html`` with Jinja2."""

import base64
import re
from pathlib import Path

from jinja2 import Environment, FileSystemLoader
from markupsafe import Markup, escape

from loadtest.report.charts import CHART_TITLES
from loadtest.report.sections import emulator_verdict, sections
from loadtest.summary import Summary


def inline_markdown(text: str) -> Markup:
    """Escape, then render **bold** and `code` (all the Markdown the sections use)."""
    html = str(escape(text))
    html = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", html)
    return Markup(re.sub(r"`(.+?)`", r"<code>\1</code>", html))


_environment = Environment(
    loader=FileSystemLoader(Path(__file__).parent),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
_environment.filters["md"] = inline_markdown


def html_report(summary: Summary, charts: dict[str, bytes]) -> str:
    return _environment.get_template("template.html").render(
        bottleneck=summary.emulator.bottleneck,
        verdict=emulator_verdict(summary),
        charts=[
            (CHART_TITLES.get(name, name), base64.b64encode(png).decode("ascii"))
            for name, png in charts.items()
        ],
        sections=sections(summary),
    )
