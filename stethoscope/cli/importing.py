"""`steth import FILE...`: load OTLP/JSON lines files (the Collector file-exporter format)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from stethoscope.cli import common


def register(subparsers: Any) -> None:
    """Add `import` to the CLI."""
    parser = subparsers.add_parser("import", help="load OTLP/JSON lines files (.gz too)")
    common.add_data_args(parser)
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from stethoscope.cli import loader  # decoders and the store load only when importing

    return loader.run(args)
