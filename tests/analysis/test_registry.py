"""Every detector module is registered, once, under its own name."""

from __future__ import annotations

from pathlib import Path

import pytest

import stethoscope.analysis.detectors as package
from stethoscope.analysis.registry import detectors, register

MODULES = sorted(path.stem for path in Path(package.__file__).parent.glob("[!_]*.py"))


@pytest.mark.parametrize("module", MODULES)
def test_every_detector_module_registers_its_detectors(module: str) -> None:
    registered = {type(detector).__module__ for detector in detectors()}
    assert f"stethoscope.analysis.detectors.{module}" in registered


def test_two_detectors_cannot_share_a_name() -> None:
    taken = detectors()[0].name

    class Impostor:
        name = taken

        def detect(self, context: object) -> list[object]:
            return []

    with pytest.raises(ValueError, match="already registered"):
        register(Impostor)
