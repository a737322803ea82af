"""What happened to the processes themselves: crashes, crash loops, failed probes, lost data.

These come from the events `steth run` and `steth scrape` send (see BRIEF "Event names"), so
they are causes at the instance that sent them, not symptoms travelling up the call graph: a
crash loop outweighs a single crash, which outweighs a probe that went down. A process stopped
on purpose is not a finding: exit code 0, or a stop signal (SIGTERM, SIGINT, SIGHUP) that its
supervisor did not answer with a restart. Trouble that was already there before the window
(a crash loop in the baseline, a probe down since before) is still reported, as ongoing and at
half the score: it is less likely to be what changed.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from stethoscope.analysis.compare import severity_for
from stethoscope.analysis.context import AnalysisContext
from stethoscope.analysis.findings import Evidence, Finding
from stethoscope.analysis.registry import register
from stethoscope.model.timeutil import format_duration_ns

__all__ = [
    "CaptureOverflowDetector",
    "CrashDetector",
    "ProbeDownDetector",
    "ScrapeDownDetector",
]

Row = dict[str, Any]
Instance = tuple[str, str]

CRASH_SCORE = 4.0
CRASH_LOOP_SCORE = 6.0
# More crashes add a little (log2 of the count, halved), never more than this.
REPEAT_BONUS_CAP = 1.5
DOWN_SCORE = 3.0
STILL_DOWN_BONUS = 0.5
OVERFLOW_SCORE = 1.0
# Already there before the window: less likely what changed.
ONGOING_WEIGHT = 0.5
STOP_SIGNALS = frozenset({"SIGTERM", "SIGINT", "SIGHUP"})
# A supervisor announces its restart right after the exit; later restarts answer later exits.
RESTART_FOLLOWS_NS = 5_000_000_000
STDERR_LINES = 5


def _by_instance(events: Iterable[Row], name: str) -> dict[Instance, list[Row]]:
    grouped: dict[Instance, list[Row]] = defaultdict(list)
    for event in events:
        if event["event_name"] == name:
            grouped[(event["service"], event["instance"])].append(event)
    return grouped


@dataclass
class Crashes:
    """One instance's failed exits and crash loops in one period."""

    failed: list[Row] = field(default_factory=list)
    loops: list[Row] = field(default_factory=list)
    restarts: int = 0
    exits: int = 0  # all exits in the period
    examined: int = 0  # the newest of them, whose failures are counted

    @property
    def failing(self) -> bool:
        """Whether anything failed."""
        return bool(self.failed or self.loops)


def _failed(exit_event: Row, restarts: list[Row]) -> bool:
    """A non-zero code, or a signal that was not a stop (the supervisor restarted after it)."""
    attributes = exit_event["attributes"]
    signal = attributes.get("process.exit.signal")
    if signal:
        if signal not in STOP_SIGNALS:
            return True
        return any(
            0 <= restart["time_ns"] - exit_event["time_ns"] <= RESTART_FOLLOWS_NS
            for restart in restarts
        )
    return bool(attributes.get("process.exit.code", 0))


def _crashes(events: list[Row]) -> dict[Instance, Crashes]:
    restarts = _by_instance(events, "process.restart")
    loops = _by_instance(events, "process.crash_loop")
    found: dict[Instance, Crashes] = defaultdict(Crashes)
    for key, exits in _by_instance(events, "process.exit").items():
        crashes = found[key]
        crashes.exits = exits[-1]["count"]
        crashes.examined = len(exits)
        crashes.failed = [event for event in exits if _failed(event, restarts.get(key, []))]
    for key, rows in loops.items():
        found[key].loops = rows
    for key, rows in restarts.items():
        found[key].restarts = rows[-1]["count"]
    return found


def _exit_words(event: Row) -> str:
    attributes = event["attributes"]
    signal = attributes.get("process.exit.signal")
    how = f"killed by {signal}" if signal else f"exit code {attributes.get('process.exit.code')}"
    if signal == "SIGKILL":
        how += " (often the out-of-memory killer)"
    ran = attributes.get("process.run_seconds")
    return how + (f" after {ran:g}s" if isinstance(ran, int | float) else "")


def _crash_evidence(crashes: Crashes) -> tuple[Evidence, ...]:
    items = []
    if crashes.loops:
        loop = crashes.loops[-1]["attributes"]
        items.append(
            Evidence(
                kind="crash-loop",
                summary=f"crash loop: {loop.get('steth.restart_count')} restarts within "
                f"{loop.get('steth.window_seconds')}s",
                data={"restart_count": loop.get("steth.restart_count")},
            )
        )
    if crashes.failed:
        last = crashes.failed[-1]
        attributes = last["attributes"]
        tail = str(attributes.get("process.stderr_tail") or "").splitlines()[-STDERR_LINES:]
        items.append(
            Evidence(
                kind="process-exit",
                summary=f"pid {attributes.get('process.pid')} {_exit_words(last)}"
                + (f"; last stderr: {' | '.join(tail)}" if tail else ""),
                data={
                    "exit_code": attributes.get("process.exit.code"),
                    "exit_signal": attributes.get("process.exit.signal"),
                    "run_seconds": attributes.get("process.run_seconds"),
                    "stderr_tail": tail,
                    "time_ns": last["time_ns"],
                },
            )
        )
    return tuple(items)


@register
class CrashDetector:
    """Processes that exited with an error or a fatal signal, restarted, or loop crashing."""

    name = "crash"

    def detect(self, context: AnalysisContext) -> list[Finding]:
        before = _crashes(context.events_baseline)
        findings = []
        for key, crashes in _crashes(context.events).items():
            looped = key in before and before[key].loops
            # A crash loop of the baseline that still restarts in the window goes on.
            if crashes.failing or (looped and crashes.restarts):
                findings.append(self._finding(key, crashes, before.get(key)))
        return findings

    def _finding(self, key: Instance, crashes: Crashes, before: Crashes | None) -> Finding:
        looping = bool(crashes.loops) or bool(before and before.loops)
        failures = max(len(crashes.failed), 1)
        score = CRASH_LOOP_SCORE if looping else CRASH_SCORE
        score += min(REPEAT_BONUS_CAP, math.log2(failures) / 2)
        ongoing = before is not None and before.failing
        if ongoing:
            score *= ONGOING_WEIGHT
        starts = [event["time_ns"] for event in (*crashes.failed, *crashes.loops)]
        what = "in a crash loop" if looping else "crashed"
        detail = _exit_words(crashes.failed[-1]) if crashes.failed else "no exit seen"
        counted = f" of the last {crashes.examined}" if crashes.exits > crashes.examined else ""
        summary = f"{key[1]} {what}: {len(crashes.failed)}{counted} exits failed ({detail}), "
        summary += f"{crashes.restarts} restarts"
        summary += " (ongoing: also before the window)" if ongoing else ""
        return Finding(
            kind=self.name,
            service=key[0],
            instance=key[1],
            severity=severity_for(score),
            start_ns=min(starts) if starts else None,
            summary=summary,
            score=score,
            evidence=_crash_evidence(crashes),
        )


def _stopped_before(context: AnalysisContext) -> set[Instance]:
    """Instances whose last lifecycle event before the window was an exit, with none since."""
    last: dict[Instance, Row] = {}
    for row in context.events_before:
        if row["event_name"] in ("process.start", "process.exit"):
            key = (row["service"], row["instance"])
            if key not in last or row["time_ns"] > last[key]["time_ns"]:
                last[key] = row
    active = {(row["service"], row["instance"]) for row in context.events}
    return {
        key
        for key, row in last.items()
        if row["event_name"] == "process.exit" and key not in active
    }


@dataclass(frozen=True)
class _Outage:
    """One target's down time in the window."""

    first_down_ns: int | None
    still_down: bool
    ongoing: bool
    last: Row


class _TargetDownDetector:
    """A target (probe URL, scrape target) whose state events say it went down."""

    name = ""
    event = ""
    state_key = ""
    what = ""

    def detect(self, context: AnalysisContext) -> list[Finding]:
        before = {
            (row["service"], row["instance"], row["url"]): row
            for row in [*context.events_baseline, *context.events_before]
            if row["event_name"] == self.event
        }  # the later of the two wins: events_before ends where the window starts
        during: dict[tuple[str, str, str], list[Row]] = defaultdict(list)
        for row in context.events:
            if row["event_name"] == self.event:
                during[(row["service"], row["instance"], row["url"])].append(row)
        gone = _stopped_before(context)
        findings = []
        for key in sorted({*during, *before}):
            outage = self._outage(before.get(key), during.get(key, []))
            # A target down since its process stopped for good is no outage of this window.
            if outage is not None and not (outage.ongoing and key[:2] in gone):
                findings.append(self._finding(context, key, outage))
        return findings

    def _down(self, row: Row) -> bool:
        return row["attributes"].get(self.state_key) == "down"

    def _outage(self, before: Row | None, rows: list[Row]) -> _Outage | None:
        was_down = before is not None and self._down(before)
        downs = [row for row in rows if self._down(row)]
        if downs:
            return _Outage(downs[0]["time_ns"], self._down(rows[-1]), False, downs[-1])
        if was_down and before is not None and not rows:
            return _Outage(before["time_ns"], True, True, before)
        return None

    def _finding(
        self, context: AnalysisContext, key: tuple[str, str, str], outage: _Outage
    ) -> Finding:
        service, instance, url = key
        score = DOWN_SCORE + (STILL_DOWN_BONUS if outage.still_down else 0.0)
        if outage.ongoing:
            score *= ONGOING_WEIGHT
        attributes = outage.last["attributes"]
        error = attributes.get("error.message") or (
            f"HTTP {attributes['http.response.status_code']}"
            if attributes.get("http.response.status_code")
            else "no answer"
        )
        if outage.ongoing:
            state = "down since before the window"
        elif outage.still_down:
            since = max(outage.first_down_ns or 0, context.scope.since_ns)
            state = f"down for the last {format_duration_ns(context.scope.until_ns - since)}"
        else:
            state = "went down, then came back up"
        return Finding(
            kind=self.name,
            service=service,
            instance=instance,
            severity=severity_for(score),
            start_ns=outage.first_down_ns,
            summary=f"{self.what} {url or '(no url)'} {state}: {error}",
            score=score,
            evidence=(
                Evidence(
                    kind=self.event,
                    summary=str(outage.last["body"]),
                    data={"url": url, "error": error, "time_ns": outage.last["time_ns"]},
                ),
            ),
        )


@register
class ProbeDownDetector(_TargetDownDetector):
    """Health probes (`steth run --probe`) that went down."""

    name = "probe-down"
    event = "probe.state"
    state_key = "probe.state"
    what = "probe"


@register
class ScrapeDownDetector(_TargetDownDetector):
    """Scrape targets (`steth scrape`) that stopped answering."""

    name = "scrape-down"
    event = "scrape.target"
    state_key = "scrape.state"
    what = "scrape target"


@register
class CaptureOverflowDetector:
    """Records the capture dropped: the data about this instance has a hole."""

    name = "capture-overflow"

    def detect(self, context: AnalysisContext) -> list[Finding]:
        findings = []
        for (service, instance), rows in _by_instance(context.events, "capture.overflow").items():
            dropped = sum(int(row["attributes"].get("steth.dropped_records") or 0) for row in rows)
            findings.append(
                Finding(
                    kind=self.name,
                    service=service,
                    instance=instance,
                    severity=severity_for(OVERFLOW_SCORE),
                    start_ns=rows[0]["time_ns"],
                    summary=f"{dropped} records of {instance} were dropped by the capture "
                    "(its data in this window is incomplete)",
                    score=OVERFLOW_SCORE,
                    evidence=tuple(
                        Evidence(kind="capture.overflow", summary=str(row["body"]))
                        for row in rows[-3:]
                    ),
                )
            )
        return findings
