"""`steth parse FILE [--json] [--content-only]`: mine log templates offline over a file of lines.

Prints, for every line, its line number, template id and template: tab-separated, or one JSON
object per line with `--json` (`line`, `template_id`, `template`, `variables`, and the detected
`timestamp`, `level` and `component` when header detection found them).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from stethoscope.errors import DataError

CHUNK_LINES = 10_000


def register(subparsers: Any) -> None:
    """Add `parse` to the CLI."""
    parser = subparsers.add_parser(
        "parse", help="print the log template of every line of a file (offline)"
    )
    parser.add_argument("file", type=Path, help="a file of raw log lines ('-' for stdin)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument(
        "--content-only",
        action="store_true",
        help="lines are already message text: skip timestamp/level/component detection",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, out: IO[str] | None = None) -> int:
    """Parse every line of ``args.file`` and print one result per line to ``out``."""
    out = out or sys.stdout
    if str(args.file) == "-":
        _render(sys.stdin, args, out)
        return 0
    try:
        with open(args.file, encoding="utf-8", errors="replace", newline="") as handle:
            _render(handle, args, out)
    except BrokenPipeError:
        raise  # the output's reader left, not the file: `main` stops quietly
    except OSError as error:
        raise DataError(f"cannot read {args.file}: {error.strerror or error}") from error
    return 0


def _render(lines: Iterable[str], args: argparse.Namespace, out: IO[str]) -> None:
    from stethoscope.logs.header import split_header  # loaded only when the command runs
    from stethoscope.logs.templates import TemplateMiner

    miner = TemplateMiner()
    number = 0
    for chunk in _chunks(lines):
        rendered = []
        for line in chunk:
            number += 1
            header = None if args.content_only else split_header(line)
            message = header.message if header else line.rstrip("\r\n")
            mined = miner.add(message)
            if args.json:
                rendered.append(_json_line(number, mined, header))
            else:
                rendered.append(f"{number}\t{mined.template_id}\t{mined.template}")
        out.write("\n".join(rendered) + "\n")


def _json_line(number: int, mined: Any, header: Any) -> str:
    import json

    record: dict[str, Any] = {
        "line": number,
        "template_id": mined.template_id,
        "template": mined.template,
        "variables": mined.variables,
    }
    if header is not None:
        for key in ("timestamp", "level", "component"):
            value = getattr(header, key)
            if value is not None:
                record[key] = value
    return json.dumps(record, ensure_ascii=False)


def _chunks(lines: Iterable[str]) -> Iterator[list[str]]:
    chunk: list[str] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) >= CHUNK_LINES:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
