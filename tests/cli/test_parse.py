"""`steth parse FILE`: every line's number, template id and template, from a real file."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest

from stethoscope.cli import parse
from stethoscope.errors import DataError

LINES = [
    "2024-03-01 12:00:00,001 WARN pool: Connection to 10.0.0.5:5432 timed out after 30s",
    "2024-03-01 12:00:01,002 WARN pool: Connection to 10.0.0.9:5432 timed out after 12s",
    "2024-03-01 12:00:02,003 INFO http: GET /orders/17 answered 200 in 4ms",
]


def build_parser() -> argparse.ArgumentParser:
    """A parser with only `parse` registered, as main.py registers it."""
    parser = argparse.ArgumentParser(prog="steth")
    parse.register(parser.add_subparsers(dest="command"))
    return parser


def run_parse(*argv: str) -> list[str]:
    """Run `steth parse ARGV` through its handler and return the printed lines."""
    args = build_parser().parse_args(["parse", *argv])
    out = io.StringIO()
    assert args.handler(args, out) == 0
    return out.getvalue().splitlines()


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    path = tmp_path / "app.log"
    path.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    return path


def test_text_output_is_tab_separated(log_file: Path) -> None:
    printed = [line.split("\t") for line in run_parse(str(log_file))]
    assert [row[0] for row in printed] == ["1", "2", "3"]
    assert printed[0][1] == printed[1][1] != printed[2][1]
    assert printed[0][2] == "Connection to <*> timed out after <*>"


def test_json_output_carries_header_and_variables(log_file: Path) -> None:
    records = [json.loads(line) for line in run_parse(str(log_file), "--json")]
    assert records[1] == {
        "line": 2,
        "template_id": records[0]["template_id"],
        "template": "Connection to <*> timed out after <*>",
        "variables": ["10.0.0.9:5432", "12s"],
        "timestamp": "2024-03-01 12:00:01,002",
        "level": "WARN",
        "component": "pool",
    }


def test_content_only_keeps_the_whole_line(log_file: Path) -> None:
    records = [json.loads(line) for line in run_parse(str(log_file), "--json", "--content-only")]
    assert "timestamp" not in records[0]
    assert records[0]["template"].endswith("WARN pool: Connection to <*> timed out after <*>")


def test_ids_match_across_runs(log_file: Path) -> None:
    assert run_parse(str(log_file)) == run_parse(str(log_file))


def test_missing_file_is_a_data_error(tmp_path: Path) -> None:
    args = build_parser().parse_args(["parse", str(tmp_path / "absent.log")])
    with pytest.raises(DataError, match="cannot read"):
        args.handler(args, io.StringIO())


def test_steth_parse_runs_as_a_command(tmp_path: Path) -> None:
    import subprocess
    import sys

    from conftest import cli_env

    log = tmp_path / "app.log"
    log.write_text(
        "Connection to 10.0.0.5:5432 timed out after 30s\n"
        "2024-01-02 10:00:00,123 WARN db.Pool: Connection to 10.0.0.9:5432 timed out after 12s\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "stethoscope.cli.main", "parse", str(log)],
        capture_output=True, text=True, env=cli_env(), timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [line.split("\t") for line in done.stdout.splitlines()]
    assert [row[0] for row in rows] == ["1", "2"]
    assert rows[0][1] == rows[1][1]
    assert rows[0][2] == rows[1][2] == "Connection to <*> timed out after <*>"
