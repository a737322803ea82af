"""Detectors are registered, not hard-wired: the built-in ones use the same registry as plugins."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, TypeVar

if TYPE_CHECKING:
    from stethoscope.analysis.context import AnalysisContext
    from stethoscope.analysis.findings import Finding

__all__ = ["Detector", "detectors", "register"]


class Detector(Protocol):
    """Looks at one aspect of the incident window against the baseline."""

    name: str

    def detect(self, context: AnalysisContext) -> list[Finding]:
        """Every anomaly of this kind, each with its evidence."""
        ...


_REGISTRY: dict[str, Detector] = {}
D = TypeVar("D", bound=type)


def register(cls: D) -> D:
    """Class decorator: add one instance of a detector class to the registry, once per name."""
    detector = cls()
    if detector.name in _REGISTRY:
        raise ValueError(f"a detector named {detector.name!r} is already registered")
    _REGISTRY[detector.name] = detector
    return cls


def detectors() -> list[Detector]:
    """Every registered detector, built-in ones included, in name order."""
    import stethoscope.analysis.detectors  # noqa: F401 - registers the built-in detectors

    return [_REGISTRY[name] for name in sorted(_REGISTRY)]
