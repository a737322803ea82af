"""`steth` builds only the invoked command's parser: the table it uses must match the modules."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from stethoscope.cli.main import COMMANDS, build_parser, main


def test_the_command_table_names_every_command_of_every_module() -> None:
    registered = {}
    for module in set(COMMANDS.values()):
        parser = argparse.ArgumentParser()
        subparsers = parser.add_subparsers()
        importlib.import_module(f"stethoscope.cli.{module}").register(subparsers)
        registered |= dict.fromkeys(subparsers.choices, module)
    assert registered == COMMANDS


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_command_parses_alike_alone_and_among_all(command: str) -> None:
    def options(parser: argparse.ArgumentParser) -> list[str]:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        return sorted(o for a in action.choices[command]._actions for o in a.option_strings)

    assert options(build_parser(command)) == options(build_parser())


def test_an_unknown_command_gets_the_full_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["nonsense"])
    assert exited.value.code == 2
    assert "invalid choice: 'nonsense'" in capsys.readouterr().err


def test_the_version_is_told_without_importing_any_command() -> None:
    code = (
        "import sys\n"
        "from stethoscope.cli.main import main\n"
        "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('stethoscope.cli.')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    version, modules = done.stdout.splitlines()
    assert version.startswith("steth ")
    assert modules == "['stethoscope.cli.main']"


def test_a_reader_that_leaves_early_stops_the_command_quietly(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("".join(f"INFO user {n} logged in from 10.0.0.{n % 9}\n" for n in range(50_000)))
    with subprocess.Popen(
        [sys.executable, "-m", "stethoscope.cli.main", "parse", str(log), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as command:
        assert command.stdout is not None and command.stderr is not None
        assert "template" in command.stdout.readline()
        command.stdout.close()  # as `| head -1` does
        errors = command.stderr.read()
    assert command.returncode == 1
    assert errors == ""
