"""The `steth why` report in the terminal: suspects first, then the evidence, then the rest."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["render_why"]

# How many suspects get their evidence printed in full, and how many findings are listed.
DETAILED_SUSPECTS = 3
OTHER_FINDINGS = 15


def render_why(report: dict[str, Any], console: Console) -> None:
    """Print a `steth why` report (the --json shape)."""
    window = report["window"]
    console.print(f"[bold]Window[/bold] {window['start']} .. {window['end']}", end="")
    if report.get("baseline"):
        baseline = report["baseline"]
        console.print(f"  [dim]baseline {baseline['start']} .. {baseline['end']}[/dim]")
    else:
        console.print()
    suspects = report["suspects"]
    if not suspects:
        console.print("No anomaly found against the baseline.")
        return
    table = Table(title="Suspects, most likely first", title_justify="left", box=None)
    for column in ("#", "service", "score", "onset", "why"):
        table.add_column(column, justify="right" if column in ("#", "score") else "left")
    for rank, suspect in enumerate(suspects, start=1):
        name = suspect["service"] + (f" ({suspect['instance']})" if suspect["instance"] else "")
        first = suspect["evidence"][0]["summary"] if suspect["evidence"] else ""
        table.add_row(
            str(rank),
            name,
            f"{suspect['score']:.1f}",
            _clock(suspect["onset"]),
            f"{', '.join(suspect['reasons'])}: {_shorten(first, 90)}",
        )
    console.print(table)
    for rank, suspect in enumerate(suspects[:DETAILED_SUSPECTS], start=1):
        console.print(f"\n[bold]{rank}. {suspect['service']}[/bold] — evidence")
        for item in suspect["evidence"]:
            console.print(f"  • [{_clock(item['start'])}] {item['summary']}")
            for detail in item.get("details", []):
                console.print(f"      {detail['summary']}", style="dim")
    others = report["findings"]
    console.print(f"\n[bold]All findings[/bold] ({len(others)})")
    for finding in others[:OTHER_FINDINGS]:
        console.print(
            f"  {finding['severity']:<8} {_clock(finding['start'])} {finding['kind']:<13} "
            f"{finding['service']}: {_shorten(finding['summary'], 110)}"
        )
    if len(others) > OTHER_FINDINGS:
        console.print(f"  … {len(others) - OTHER_FINDINGS} more (--json shows all)", style="dim")


def _clock(iso: str | None) -> str:
    """The time of day of an ISO timestamp, enough to order events in one incident."""
    if not iso:
        return "--:--:--"
    return iso[11:19]


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
