"""The README's promises about commands and flags stay true."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stethoscope.cli.main import build_parser

README = (Path(__file__).parents[1] / "README.md").read_text()
ROWS = re.findall(r"^\| `steth (\w+)([^`]*)` \|", README, flags=re.M)


def subcommands() -> dict:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return dict(action.choices)


def test_the_readme_lists_every_command():
    assert {name for name, _ in ROWS} == set(subcommands())


@pytest.mark.parametrize(("command", "usage"), ROWS, ids=[name for name, _ in ROWS])
def test_every_documented_flag_exists(command: str, usage: str):
    flags = set(re.findall(r"--[a-z-]+", usage))
    known = {opt for action in subcommands()[command]._actions for opt in action.option_strings}
    assert flags <= known, f"steth {command}: documented but unknown {flags - known}"


def test_query_commands_take_json_data_since_until():
    for name in ("services", "traces", "trace", "logs", "metrics", "templates", "events", "why"):
        known = {o for a in subcommands()[name]._actions for o in a.option_strings}
        assert {"--json", "--data", "--since", "--until"} <= known, name


def test_the_two_setup_commands_are_make_targets():
    makefile = (Path(__file__).parents[1] / "Makefile").read_text()
    assert "    make run\n" in README and "    make test\n" in README
    assert re.search(r"^run:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    ci = (Path(__file__).parents[1] / ".ci/run").read_text()
    assert "make test" in ci
