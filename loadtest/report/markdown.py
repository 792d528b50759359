"""summary.md: the report's sections as Markdown tables."""

from loadtest.report.sections import Section, emulator_verdict, sections
from loadtest.summary import Summary


def markdown(summary: Summary) -> str:
    lines = ["# imgpipe load test", "", f"**{emulator_verdict(summary)}**", ""]
    for section in sections(summary):
        lines += _table(section)
    return "\n".join(lines)


def _table(section: Section) -> list[str]:
    lines = [f"## {section.title}", ""]
    lines.append(_row(section.header) if section.headed else "|" + " |" * len(section.header))
    lines.append("|" + "---|" * len(section.header))
    lines += [_row([cell.replace("|", "\\|") for cell in row]) for row in section.rows]
    lines.append("")
    for note in section.notes:
        lines += [note, ""]
    return lines


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"
