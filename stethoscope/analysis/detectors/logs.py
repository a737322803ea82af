"""What the logs say changed: more errors, templates never seen before, templates gone silent.

Logs are compared as per-template rates, so a window and a baseline of different lengths
compare fairly. A rise needs both a ratio (at least double) and a count no baseline noise
explains (a Poisson z-score), so a template that logs twice instead of once says nothing.
A template that was regular in the baseline and is absent now is the signal of a silent
failure: a worker that stopped consuming, a service that stopped logging.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from stethoscope.analysis.compare import log_ratio, severity_for
from stethoscope.analysis.context import AnalysisContext
from stethoscope.analysis.findings import Evidence, Finding
from stethoscope.analysis.registry import register

__all__ = ["LogErrorDetector", "NewTemplateDetector", "VanishedTemplateDetector"]

ERROR_LEVEL = 17
WARN_LEVEL = 13
Z_SIGNIFICANT = 3.0
# At least this many records expected in the window before an absence means anything.
EXPECTED_FOR_ABSENCE = 8.0
EXAMPLES = 3
# One record a minute: the rate floor below which log rates are not compared.
RATE_FLOOR = 1 / 60


@dataclass(frozen=True)
class Rates:
    """A component's record count in the window and what the baseline rate predicts for it."""

    count: int
    expected: float

    @property
    def z(self) -> float:
        """How far the count is from the prediction, in Poisson standard deviations."""
        return (self.count - self.expected) / math.sqrt(self.expected + 1.0)


def _lengths(context: AnalysisContext) -> tuple[float, float]:
    """Seconds of the window and of the baseline that hold any data at all.

    A baseline reaching back before the first record (a system started ten minutes ago, asked
    about with a fifteen-minute baseline) would otherwise dilute every baseline rate.
    """
    return context.active_seconds(window=True), context.active_seconds(window=False)


def _service_rows(rows: dict[tuple[Any, ...], dict[str, Any]]) -> dict[tuple[Any, ...], Any]:
    """Whole-service rows (instance None), keyed (service, template_id)."""
    return {(key[0], key[2]): row for key, row in rows.items() if key[1] is None}


def _level_weight(level: int) -> float:
    """How much a new message of this level says: an error much more than an info line."""
    if level >= ERROR_LEVEL:
        return 2.0
    return 1.0 if level >= WARN_LEVEL else 0.5


def _template_evidence(kind: str, rows: list[dict[str, Any]]) -> tuple[Evidence, ...]:
    """The first few templates as evidence: how many records, an example line."""
    return tuple(
        Evidence(
            kind=kind,
            summary=f"{row['records']}x {_example(row)}",
            data={
                "template": row.get("template"),
                "records": row["records"],
                "level": row["level"],
            },
        )
        for row in rows[:EXAMPLES]
    )


def _example(row: dict[str, Any]) -> str:
    example = str(row.get("example") or "")
    return example if len(example) <= 240 else example[:239] + "…"


@register
class LogErrorDetector:
    """Services logging errors more often than in the baseline."""

    name = "log-errors"

    def detect(self, context: AnalysisContext) -> list[Finding]:
        window_s, baseline_s = _lengths(context)
        now: dict[str, list[dict[str, Any]]] = defaultdict(list)
        before: dict[str, int] = defaultdict(int)
        for (service, _), row in _service_rows(context.logs.total).items():
            if row["level"] >= ERROR_LEVEL:
                now[service].append(row)
        for (service, _), row in _service_rows(context.logs_baseline.total).items():
            if row["level"] >= ERROR_LEVEL:
                before[service] += row["records"]
        findings = []
        for service, rows in now.items():
            count = sum(row["records"] for row in rows)
            rates = Rates(count, before[service] * window_s / baseline_s)
            score = log_ratio(count / window_s, before[service] / baseline_s, floor=RATE_FLOOR)
            if rates.z < Z_SIGNIFICANT or score < 1.0:
                continue
            rows.sort(key=lambda row: row["records"], reverse=True)
            findings.append(
                Finding(
                    kind=self.name,
                    service=service,
                    instance=None,
                    severity=severity_for(score),
                    start_ns=min(row["first_ns"] for row in rows),
                    summary=f"{count} error log records (about {rates.expected:.0f} expected)",
                    score=score,
                    symptom=True,
                    evidence=_template_evidence("log-template", rows),
                )
            )
        return findings


@register
class NewTemplateDetector:
    """Log templates a service never printed in the baseline, weighted by their level."""

    name = "new-logs"

    def detect(self, context: AnalysisContext) -> list[Finding]:
        known = set(_service_rows(context.logs_baseline.total))
        fresh: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for key, row in _service_rows(context.logs.total).items():
            if key[1] == 0 or key in known:
                continue  # unmined records have no template to be new
            if row["records"] >= 3 or row["level"] >= ERROR_LEVEL:
                fresh[key[0]].append(row)
        findings = []
        for service, rows in fresh.items():
            rows.sort(key=lambda row: (row["level"], row["records"]), reverse=True)
            top = rows[0]
            score = _level_weight(top["level"]) + math.log2(1 + len(rows)) / 2
            findings.append(
                Finding(
                    kind=self.name,
                    service=service,
                    instance=None,
                    severity=severity_for(score),
                    start_ns=min(row["first_ns"] for row in rows),
                    summary=f"{len(rows)} log message kinds never seen in the baseline, e.g. "
                    f"{_example(top)[:120]}",
                    score=score,
                    symptom=top["level"] >= ERROR_LEVEL,
                    evidence=_template_evidence("new-template", rows),
                )
            )
        return findings


@register
class VanishedTemplateDetector:
    """Log templates that were regular in the baseline and stopped; a whole service gone quiet."""

    name = "quiet-logs"

    def detect(self, context: AnalysisContext) -> list[Finding]:
        window_s, baseline_s = _lengths(context)
        now = _service_rows(context.logs.total)
        gone: dict[str, list[tuple[float, dict[str, Any]]]] = defaultdict(list)
        kept: dict[str, int] = defaultdict(int)
        for key, row in _service_rows(context.logs_baseline.total).items():
            expected = row["records"] * window_s / baseline_s
            current = now.get(key)
            count = current["records"] if current else 0
            if key[1] != 0 and expected >= EXPECTED_FOR_ABSENCE and count <= expected / 8:
                gone[key[0]].append((expected, row))
            elif count:
                kept[key[0]] += 1
        findings = []
        for service, rows in gone.items():
            rows.sort(key=lambda item: item[0], reverse=True)
            silent = kept[service] == 0
            score = (3.0 if silent else 1.0) + math.log2(1 + len(rows)) / 2
            what = "stopped logging" if silent else f"{len(rows)} regular log messages stopped"
            findings.append(
                Finding(
                    kind=self.name,
                    service=service,
                    instance=None,
                    severity=severity_for(score),
                    start_ns=self._last_seen(context, service, [row for _, row in rows]),
                    summary=f"{what}, e.g. {_example(rows[0][1])[:120]}",
                    score=score,
                    # Requests cut short upstream or failing downstream silence some messages;
                    # a service that stopped logging altogether did that itself.
                    symptom=not silent,
                    evidence=tuple(
                        Evidence(
                            kind="vanished-template",
                            summary=f"about {expected:.0f} expected, none or few seen: "
                            f"{_example(row)}",
                            data={"template": row.get("template"), "expected": round(expected)},
                        )
                        for expected, row in rows[:EXAMPLES]
                    ),
                )
            )
        return findings

    @staticmethod
    def _last_seen(context: AnalysisContext, service: str, rows: list[dict[str, Any]]) -> int:
        """The start of the bucket after the last one in which any vanished template appeared."""
        last = -1
        for row in rows:
            for bucket in context.logs.buckets.get((service, None, row["template_id"]), []):
                last = max(last, bucket["bucket"])
        return context.scope.bucket_start_ns(last + 1)
