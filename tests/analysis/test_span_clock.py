"""Clock skew from spans: an instance that sends only spans, whose clock jumps.

Each case writes the synthetic three-tier recording, moves every span of one instance by the
skew from the fault on (as a process whose clock was set wrong would stamp them), imports it
with the real `steth import` into a real DuckDB file and asks `steth why --json`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import run_steth
from synthetic import SECOND, START_NS, write_recording

from stethoscope.model.timeutil import format_ns

FAULT_AT_S = 10 * 60
WINDOW = (
    "--since", format_ns(START_NS + FAULT_AT_S * SECOND),
    "--until", format_ns(START_NS + 15 * 60 * SECOND),
    "--baseline",
    f"{format_ns(START_NS + 60 * SECOND)}..{format_ns(START_NS + FAULT_AT_S * SECOND)}",
)  # fmt: skip


def skew_instance(path: Path, instance: str, skew_ns: int, *, at_s: int = FAULT_AT_S) -> None:
    """Move the spans of `instance` that start from `at_s` on by `skew_ns`, in place."""
    lines = []
    for line in path.read_text().splitlines():
        export: dict[str, Any] = json.loads(line)
        for resource in export.get("resourceSpans", []):
            names = {
                a["key"]: a["value"]["stringValue"] for a in resource["resource"]["attributes"]
            }
            if names.get("service.instance.id") != instance:
                continue
            for scope in resource["scopeSpans"]:
                for span in scope["spans"]:
                    if int(span["startTimeUnixNano"]) < START_NS + at_s * SECOND:
                        continue
                    for key in ("startTimeUnixNano", "endTimeUnixNano"):
                        span[key] = str(int(span[key]) + skew_ns)
        lines.append(json.dumps(export))
    path.write_text("\n".join(lines) + "\n")


def imported(tmp_path: Path, skews: dict[str, int], *, api_replicas: int = 1) -> Path:
    recording = tmp_path / "recording.jsonl"
    write_recording(recording, api_replicas=api_replicas)
    for instance, skew_ns in skews.items():
        skew_instance(recording, instance, skew_ns)
    data = tmp_path / "data"
    code, _, err = run_steth("import", str(recording), "--data", str(data))
    assert code == 0, err
    return data


def clock_findings(data: Path) -> list[dict[str, Any]]:
    code, out, err = run_steth("why", "--json", "--data", str(data), *WINDOW)
    assert code == 0, err
    return [f for f in json.loads(out)["findings"] if f["kind"] == "clock-skew"]


@pytest.mark.parametrize(
    ("instance", "skew_s", "direction", "replicas"),
    [
        pytest.param("db-0", 30, "ahead", 1, id="leaf-ahead"),
        pytest.param("api-1", -45, "behind", 2, id="middle-replica-behind"),
        pytest.param("frontend-0", 20, "ahead", 1, id="root-ahead"),
    ],
)
def test_the_skewed_instance_is_named_with_the_size_not_its_peers(
    tmp_path: Path, instance: str, skew_s: int, direction: str, replicas: int
) -> None:
    data = imported(tmp_path, {instance: skew_s * SECOND}, api_replicas=replicas)

    [finding] = clock_findings(data)
    assert finding["instance"] == instance
    assert f"{abs(skew_s)}.00s {direction}" in finding["summary"]
    [evidence] = finding["evidence"]
    assert evidence["kind"] == "span-clock-offset"
    assert abs(evidence["skew_ns"] - skew_s * SECOND) < SECOND // 10
    onset_s = (finding["start_ns"] - START_NS) / SECOND
    assert FAULT_AT_S <= onset_s <= FAULT_AT_S + 60


@pytest.mark.parametrize(
    "skews",
    [
        pytest.param({}, id="healthy"),
        # Within jitter: a clock a second off misorders nothing an operator reads.
        pytest.param({"db-0": SECOND}, id="small-offset"),
    ],
)
def test_right_clocks_raise_no_finding(tmp_path: Path, skews: dict[str, int]) -> None:
    assert clock_findings(imported(tmp_path, skews)) == []
