"""Changes near the onset: a process started as something new, and replicas that disagree.

`steth run` sends a `process.fingerprint` at every start: argv, environment (secrets withheld),
config file hashes, the executable's hash and Python packages. A fingerprint that differs from
the same instance's previous one is a deploy or a configuration change; replicas of one service
whose fingerprints disagree are config drift, blamed on the odd one out.

Replicas differ by nature too (their ports, their own names), so a field counts as drift only
when the replicas split into a majority and a minority on it, or when they agreed on it before
the window and one of them changed. The instance's own id is masked before comparing, and the
environment variables the fingerprint's digest leaves out are left out here too. Environment
values are never shown: only which variables differ.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from stethoscope.analysis.compare import severity_for
from stethoscope.analysis.context import AnalysisContext
from stethoscope.analysis.findings import Evidence, Finding
from stethoscope.analysis.registry import register

__all__ = ["ConfigDriftDetector", "FingerprintChangeDetector", "fingerprint_fields"]

Row = dict[str, Any]
Instance = tuple[str, str]
Fields = dict[str, str | None]

FINGERPRINT = "process.fingerprint"
# A change fails nothing by itself, yet it is the usual cause of what fails right after it: alone
# it weighs like a latency that more than quintupled. New drift weighs more (the odd replica
# fails where its peers do not), about as much as the errors and logs its callers then show.
CHANGE_SCORE = 2.5
DRIFT_SCORE = 3.5
ONGOING_WEIGHT = 0.5
SHOWN_FIELDS = 3
EVIDENCE_FIELDS = 12
# The variables `sources/run/fingerprint.py` leaves out of the digest (they differ between
# healthy replicas); kept in step with its `_VOLATILE_ENV`.
VOLATILE_ENV = re.compile(
    r"^(HOSTNAME|HOST|PWD|OLDPWD|SHLVL|_|TERM.*|COLUMNS|LINES|SSH_.*|DISPLAY|XDG_.*|OTEL_.*|"
    r"PYTEST_.*|STETH_.*|INVOCATION_ID|JOURNAL_STREAM|TMUX.*|WINDOWID|COLORTERM)$"
)
_ENV = "env "
_PACKAGE = "package "


def fingerprint_fields(attributes: dict[str, Any], instance: str) -> Fields:
    """A fingerprint as flat comparable fields, the instance's own id masked in values."""

    def masked(value: Any) -> str:
        text = str(value)
        return text.replace(instance, "{instance}") if len(instance) >= 3 else text

    fields: Fields = {}
    for index, arg in enumerate(attributes.get("process.command_args") or ()):
        fields[f"argv[{index}]"] = masked(arg)
    for name, value in (attributes.get("process.environment") or {}).items():
        if not VOLATILE_ENV.match(name):
            fields[f"{_ENV}{name}"] = masked(value)
    for path, digest in (attributes.get("config.files") or {}).items():
        fields[f"config file {masked(path)}"] = str(digest)
    fields["executable"] = masked(attributes.get("process.executable.path") or "")
    fields["executable sha256"] = str(attributes.get("process.executable.sha256") or "")
    for name, version in (attributes.get("python.packages") or {}).items():
        fields[f"{_PACKAGE}{name}"] = str(version)
    return fields


def _shown(field: str, value: str | None) -> str:
    if value is None:
        return "(none)"
    if field.startswith(_ENV):
        return "(set)"  # environment values stay out of reports
    if field.startswith("config file") or field == "executable sha256":
        return value[:12]
    return value


def _change(field: str, old: str | None, new: str | None) -> str:
    if field.startswith(_ENV):
        verb = "added" if old is None else "removed" if new is None else "changed"
        return f"{field} {verb}"
    return f"{field}: {_shown(field, old)} -> {_shown(field, new)}"


def _unknown(fields: Fields, name: str) -> bool:
    """Whether a fingerprint could not tell this field (packages not listed, executable
    unreadable): a listing that timed out is no change of every package."""
    if name.startswith(_PACKAGE):
        return not any(other.startswith(_PACKAGE) for other in fields)
    return name == "executable sha256" and not fields.get(name)


def _differing(a: Fields, b: Fields) -> list[str]:
    return sorted(
        name
        for name in {*a, *b}
        if a.get(name) != b.get(name) and not (_unknown(a, name) or _unknown(b, name))
    )


@dataclass(frozen=True)
class Fingerprints:
    """Each instance's fingerprint at the window's start and its fingerprints in the window."""

    before: dict[Instance, Row]
    during: dict[Instance, list[Row]]
    alive_at_start: set[Instance]

    @classmethod
    def of(cls, context: AnalysisContext) -> Fingerprints:
        """Read from the context's events."""
        before: dict[Instance, Row] = {}
        started: dict[Instance, int] = {}
        exited: dict[Instance, int] = {}
        for row in context.events_before:
            key = (row["service"], row["instance"])
            if row["event_name"] == FINGERPRINT:
                before[key] = row
            elif row["event_name"] == "process.start":
                started[key] = row["time_ns"]
            elif row["event_name"] == "process.exit":
                exited[key] = row["time_ns"]
        during: dict[Instance, list[Row]] = defaultdict(list)
        for row in context.events:
            if row["event_name"] == FINGERPRINT:
                during[(row["service"], row["instance"])].append(row)
        alive = {key for key in before if exited.get(key, -1) < started.get(key, 0)}
        return cls(before, during, alive)

    def current(self) -> dict[Instance, Row]:
        """The latest fingerprint of every instance that ran at some time in the window."""
        found = {key: self.before[key] for key in self.alive_at_start}
        found.update({key: rows[-1] for key, rows in self.during.items()})
        return found


def _fields(row: Row) -> Fields:
    return fingerprint_fields(row["attributes"], row["instance"])


def _digest(row: Row) -> Any:
    return row["attributes"].get("steth.fingerprint")


@register
class FingerprintChangeDetector:
    """Instances restarted as something new: other argv, environment, config, code, packages."""

    name = "change"

    def detect(self, context: AnalysisContext) -> list[Finding]:
        prints = Fingerprints.of(context)
        findings = []
        for key, rows in prints.during.items():
            previous = prints.before.get(key)
            changes: list[tuple[Row, Row, list[str]]] = []
            for row in rows:
                if previous is not None and _digest(row) != _digest(previous):
                    fields = _differing(_fields(previous), _fields(row))
                    if fields:
                        changes.append((previous, row, fields))
                previous = row
            if changes:
                findings.append(self._finding(key, changes))
        return findings

    def _finding(self, key: Instance, changes: list[tuple[Row, Row, list[str]]]) -> Finding:
        old, new, fields = changes[-1]
        old_fields, new_fields = _fields(old), _fields(new)
        described = [_change(name, old_fields.get(name), new_fields.get(name)) for name in fields]
        more = f" (+{len(fields) - SHOWN_FIELDS} more)" if len(fields) > SHOWN_FIELDS else ""
        times = f", {len(changes)} changes in the window" if len(changes) > 1 else ""
        return Finding(
            kind=self.name,
            service=key[0],
            instance=key[1],
            severity=severity_for(CHANGE_SCORE),
            start_ns=changes[0][1]["time_ns"],
            summary=f"{key[1]} restarted with a new fingerprint{times}: "
            + "; ".join(described[:SHOWN_FIELDS])
            + more,
            score=CHANGE_SCORE,
            evidence=tuple(
                Evidence(kind="fingerprint-change", summary=line, data={"field": name})
                for name, line in zip(fields[:EVIDENCE_FIELDS], described, strict=False)
            )
            + (
                Evidence(
                    kind="fingerprint",
                    summary=f"{str(_digest(old))[:16]} -> {str(_digest(new))[:16]}",
                    data={"before": _digest(old), "after": _digest(new)},
                ),
            ),
        )


@dataclass
class Drift:
    """One instance's disagreements with its peers, field by field."""

    fields: list[tuple[str, str | None, str | None]]  # (field, its value, the peers' value)
    new: bool = False


def _odd_ones(
    field: str,
    now: dict[Instance, Fields],
    before: dict[Instance, Fields],
) -> tuple[list[Instance], str | None] | None:
    """The instances out of line on `field` and the value the others share; None if unclear."""
    values = {key: fields.get(field) for key, fields in now.items() if not _unknown(fields, field)}
    if len(values) < 2:
        return None
    counts = Counter(values.values())
    if len(counts) == 1 or (len(values) >= 3 and len(counts) == len(values)):
        return None  # all agree, or every replica has its own value (a port, a name)
    top, top_count = counts.most_common(1)[0]
    if top_count * 2 > len(values):
        return [key for key, value in values.items() if value != top], top
    # No majority: it drifted if they all agreed before the window and some changed since.
    earlier = {before[key].get(field) for key in values if key in before}
    if len([key for key in values if key in before]) < 2 or len(earlier) != 1:
        return None
    agreed = earlier.pop()
    odd = [key for key, value in values.items() if value != agreed]
    return (odd, agreed) if 0 < len(odd) < len(values) else None


@register
class ConfigDriftDetector:
    """Replicas of one service running side by side with different fingerprints."""

    name = "config-drift"

    def detect(self, context: AnalysisContext) -> list[Finding]:
        prints = Fingerprints.of(context)
        by_service: dict[str, dict[Instance, Row]] = defaultdict(dict)
        for key, row in prints.current().items():
            by_service[key[0]][key] = row
        findings = []
        for rows in by_service.values():
            if len(rows) < 2:
                continue
            now = {key: _fields(row) for key, row in rows.items()}
            before = {
                key: _fields(prints.before[key]) for key in rows if key in prints.alive_at_start
            }
            for key, drift in self._drifts(now, before).items():
                findings.append(self._finding(key, drift, rows))
        return findings

    @staticmethod
    def _drifts(
        now: dict[Instance, Fields], before: dict[Instance, Fields]
    ) -> dict[Instance, Drift]:
        drifts: dict[Instance, Drift] = {}
        for field in sorted({name for fields in now.values() for name in fields}):
            found = _odd_ones(field, now, before)
            if found is None:
                continue
            odd, usual = found
            for key in odd:
                drift = drifts.setdefault(key, Drift([]))
                drift.fields.append((field, now[key].get(field), usual))
                # New when the odd value came in the window (it had another before).
                drift.new |= key not in before or before[key].get(field) != now[key].get(field)
        return drifts

    def _finding(self, key: Instance, drift: Drift, rows: dict[Instance, Row]) -> Finding:
        peers = sorted(other[1] for other in rows if other != key)
        score = DRIFT_SCORE if drift.new else DRIFT_SCORE * ONGOING_WEIGHT
        described = [
            f"{field}: {_shown(field, mine)} here, {_shown(field, usual)} on the others"
            for field, mine, usual in drift.fields
        ]
        more = f" (+{len(described) - SHOWN_FIELDS} more)" if len(described) > SHOWN_FIELDS else ""
        return Finding(
            kind=self.name,
            service=key[0],
            instance=key[1],
            severity=severity_for(score),
            start_ns=rows[key]["time_ns"],
            summary=f"{key[1]} runs a different configuration than {', '.join(peers)}: "
            + "; ".join(described[:SHOWN_FIELDS])
            + more
            + ("" if drift.new else " (ongoing: already before the window)"),
            score=score,
            evidence=tuple(
                Evidence(kind="drift", summary=line, data={"field": field, "peers": peers})
                for (field, _, _), line in zip(
                    drift.fields[:EVIDENCE_FIELDS], described, strict=False
                )
            ),
        )
