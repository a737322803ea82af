"""`steth watch`: from one `steth why` report per tick to the events worth telling someone.

Pure: no clock, no I/O. Each tick hands `WatchState.observe` the report (the `steth why --json`
shape, whether it came from the server's API or was computed in-process) and the tick's time.

Rules:
- A finding is identified by (kind, service, instance, peer), never by its summary, whose
  numbers change every tick. Several findings with one identity in a report count as one (the
  strongest; reports list findings strongest first).
- New the first tick it appears: one "finding" event. Ongoing while it keeps appearing: nothing.
- Recovered once it has been absent for `recovery_ticks` consecutive ticks: one "recovered"
  event with how long it lasted. Absent for fewer ticks and back again (flapping): still the
  same incident, nothing reported. After a recovery it is new again.
- The top suspect: the first one is reported at once; a change to another service is reported
  once the new one has been on top for `suspect_ticks` consecutive ticks, so two close
  suspects swapping places every tick do not flood the output. With no suspect for
  `recovery_ticks` ticks the reported suspect is forgotten silently (the recoveries said it).
- The baseline is held while an incident lasts: the period before the window slides with each
  tick only while nothing is tracked. Otherwise a fault lasting longer than the window would
  slide into its own baseline and be reported as recovered while it still goes on.
- At most `max_tracked` findings are tracked; past that, the one seen least recently is
  forgotten (counted in `evictions`; its recovery will not be reported).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stethoscope.errors import UsageError
from stethoscope.model.timeutil import NS_PER_S, format_ns

__all__ = ["EVENTS", "FindingKey", "WatchConfig", "WatchEvent", "WatchState", "finding_key"]

EVENTS = ("finding", "recovered", "suspect")

FindingKey = tuple[str, str, str | None, str | None]


def finding_key(finding: Mapping[str, Any]) -> FindingKey:
    """The identity of a finding across ticks: (kind, service, instance, peer)."""
    return (
        str(finding["kind"]),
        str(finding["service"]),
        finding.get("instance"),
        finding.get("peer"),
    )


@dataclass(frozen=True, kw_only=True)
class WatchConfig:
    """How long an absence means recovery, how stable a new top suspect must be, and bounds."""

    recovery_ticks: int = 2
    suspect_ticks: int = 2
    max_tracked: int = 1000

    def validate(self) -> None:
        """Refuse counts below one with a clear message."""
        for name in ("recovery_ticks", "suspect_ticks", "max_tracked"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be at least 1, got {getattr(self, name)}")


@dataclass(frozen=True, kw_only=True)
class WatchEvent:
    """Something to tell: a new finding, a recovery, or a new top suspect."""

    event: str  # one of EVENTS
    at_ns: int  # the tick that noticed it
    data: dict[str, Any]  # the finding (or suspect) as the `steth why --json` contract shows it
    previous: str | None = None  # for "suspect": the service reported before
    started_ns: int | None = None  # for "recovered": onset of the incident
    last_seen_ns: int | None = None  # for "recovered": the last tick that still showed it

    @property
    def duration_s(self) -> float | None:
        """For a recovery: from onset to the last tick that still showed it, in seconds."""
        if self.started_ns is None or self.last_seen_ns is None:
            return None
        return max(self.last_seen_ns - self.started_ns, 0) / NS_PER_S

    def to_json(self) -> dict[str, Any]:
        """One JSON line of `steth watch --json` (and one webhook body)."""
        out: dict[str, Any] = {"event": self.event, "time": format_ns(self.at_ns)}
        out["time_ns"] = self.at_ns
        out.update(self.data)
        if self.event == "suspect":
            out["previous"] = self.previous
        if self.event == "recovered":
            assert self.started_ns is not None and self.last_seen_ns is not None
            out["start"] = format_ns(self.started_ns)
            out["start_ns"] = self.started_ns
            out["last_seen"] = format_ns(self.last_seen_ns)
            out["duration_s"] = round(self.duration_s or 0.0, 3)
        return out


@dataclass
class _Tracked:
    finding: dict[str, Any]  # as last seen
    started_ns: int
    last_seen_ns: int
    missed: int = 0


@dataclass
class _SuspectState:
    reported: str | None = None  # the top suspect last reported
    candidate: str | None = None  # the current top, when it differs from `reported`
    streak: int = 0  # consecutive ticks `candidate` has been on top
    empty: int = 0  # consecutive ticks without any suspect


@dataclass
class WatchState:
    """The findings being watched, fed one report per tick."""

    config: WatchConfig = field(default_factory=WatchConfig)
    evictions: int = 0
    _tracked: dict[FindingKey, _Tracked] = field(default_factory=dict)
    _suspect: _SuspectState = field(default_factory=_SuspectState)
    _held_baseline: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        self.config.validate()

    @property
    def tracked(self) -> int:
        """How many findings are being watched (ongoing, or absent but not yet recovered)."""
        return len(self._tracked)

    def baseline_for(self, since_ns: int, length_ns: int) -> tuple[int, int]:
        """The baseline of a window starting at `since_ns`: the one held during an incident,
        else the `length_ns` just before the window."""
        return self._held_baseline or (since_ns - length_ns, since_ns)

    def observe(
        self,
        report: Mapping[str, Any],
        *,
        at_ns: int,
        baseline: tuple[int, int] | None = None,
    ) -> list[WatchEvent]:
        """The events one tick's report gives rise to: new findings, recoveries, suspect.

        `baseline` is the one the report was computed with; it is held while anything is tracked.
        """
        present = _by_identity(report.get("findings") or [])
        events = self._recoveries(present, at_ns)
        for key, finding in present.items():
            tracked = self._tracked.get(key)
            if tracked is None:
                events.append(self._start(key, finding, at_ns))
            else:
                tracked.finding, tracked.last_seen_ns, tracked.missed = finding, at_ns, 0
        suspect = self._suspect_event(report.get("suspects") or [], at_ns)
        if suspect is not None:
            events.append(suspect)
        if not self._tracked:
            self._held_baseline = None
        elif self._held_baseline is None:
            self._held_baseline = baseline
        return events

    def _recoveries(self, present: Mapping[FindingKey, Any], at_ns: int) -> list[WatchEvent]:
        events = []
        for key in [key for key in self._tracked if key not in present]:
            tracked = self._tracked[key]
            tracked.missed += 1
            if tracked.missed >= self.config.recovery_ticks:
                del self._tracked[key]
                events.append(
                    WatchEvent(
                        event="recovered",
                        at_ns=at_ns,
                        data=_identity(tracked.finding),
                        started_ns=tracked.started_ns,
                        last_seen_ns=tracked.last_seen_ns,
                    )
                )
        return events

    def _start(self, key: FindingKey, finding: dict[str, Any], at_ns: int) -> WatchEvent:
        if len(self._tracked) >= self.config.max_tracked:
            stalest = min(self._tracked, key=lambda k: self._tracked[k].last_seen_ns)
            del self._tracked[stalest]
            self.evictions += 1
        onset = finding.get("start_ns")
        started = min(onset, at_ns) if isinstance(onset, int) else at_ns
        self._tracked[key] = _Tracked(finding=finding, started_ns=started, last_seen_ns=at_ns)
        return WatchEvent(event="finding", at_ns=at_ns, data=finding)

    def _suspect_event(self, suspects: list[Mapping[str, Any]], at_ns: int) -> WatchEvent | None:
        state = self._suspect
        if not suspects:
            state.empty += 1
            state.candidate, state.streak = None, 0
            if state.empty >= self.config.recovery_ticks:
                state.reported = None
            return None
        state.empty = 0
        top = suspects[0]
        service = str(top["service"])
        if service == state.reported:
            state.candidate, state.streak = None, 0
            return None
        state.streak = state.streak + 1 if service == state.candidate else 1
        state.candidate = service
        if state.reported is not None and state.streak < self.config.suspect_ticks:
            return None
        previous, state.reported = state.reported, service
        state.candidate, state.streak = None, 0
        return WatchEvent(event="suspect", at_ns=at_ns, data=_suspect(top), previous=previous)


def _by_identity(findings: list[Mapping[str, Any]]) -> dict[FindingKey, dict[str, Any]]:
    """One finding per identity: the first, which is the strongest in a report's order."""
    present: dict[FindingKey, dict[str, Any]] = {}
    for finding in findings:
        present.setdefault(finding_key(finding), dict(finding))
    return present


def _identity(finding: Mapping[str, Any]) -> dict[str, Any]:
    """What a recovery repeats of the finding: who, what, and how it looked last."""
    kind, service, instance, peer = finding_key(finding)
    out = {"kind": kind, "service": service, "instance": instance}
    if peer is not None:
        out["peer"] = peer
    out["severity"] = finding.get("severity")
    out["summary"] = finding.get("summary")
    return out


def _suspect(top: Mapping[str, Any]) -> dict[str, Any]:
    """The suspect as a watch event shows it: who, how strongly, and why."""
    return {
        "service": top["service"],
        "instance": top.get("instance"),
        "score": top.get("score"),
        "onset": top.get("onset"),
        "reasons": list(top.get("reasons") or []),
    }
