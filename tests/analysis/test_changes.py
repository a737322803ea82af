"""Changes near the onset: a new fingerprint (deploy, config change) and drift between replicas.

Fingerprints are computed by `steth run`'s own code over real files (a config file hashed, the
executable resolved on PATH), replayed at historical times, imported with the real
`steth import`, and `steth why --json` is asked about the window after minute 10.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from process_recording import Process, why_over
from synthetic import SECOND, START_NS

from stethoscope.model.timeutil import format_ns

WINDOW = (
    "--since",
    format_ns(START_NS + 600 * SECOND),
    "--until",
    format_ns(START_NS + 900 * SECOND),
    "--baseline",
    f"{format_ns(START_NS + 60 * SECOND)}..{format_ns(START_NS + 600 * SECOND)}",
)
CHANGE_KINDS = ("change", "config-drift")


class Deployment:
    """Real files to fingerprint: a config file per version, an environment, a command line."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {"PATH": os.environ["PATH"], "APP_MODE": "prod", "DB_PASSWORD": "hunter2"}

    def version(self, name: str, config: str) -> Path:
        """A directory holding conf.toml with `config` in it."""
        where = self.root / name
        where.mkdir(parents=True, exist_ok=True)
        (where / "conf.toml").write_text(config)
        return where

    def run(
        self,
        process: Process,
        seconds: float,
        cwd: Path,
        *extra: str,
        port: int = 8001,
        env: dict[str, str] | None = None,
    ) -> Process:
        """A start and its fingerprint, as `steth run` sends them."""
        argv = ["sh", "-c", "exec serve", "--config=conf.toml", "--port", str(port)]
        argv += ["--instance", process.instance, *extra]
        process.start(seconds, argv)
        return process.fingerprint(seconds + 0.5, argv, cwd, {**self.env, **(env or {})})


def why(tmp_path: Path, processes: list[Process]) -> dict[str, Any]:
    return why_over(tmp_path, processes, WINDOW)


def ours(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [finding for finding in report["findings"] if finding["kind"] in CHANGE_KINDS]


def redeployed(deploy: Deployment, change: str) -> list[Process]:
    """api restarted at 630 s as something else; db untouched."""
    v1 = deploy.version("v1", "workers = 4\n")
    api, db = Process("api", "api-0"), Process("db", "db-0")
    deploy.run(db, 5, v1)
    deploy.run(api, 5, v1).exit(629, 0)
    if change == "config":
        deploy.run(api, 630, deploy.version("v2", "workers = 1\n"))
    elif change == "argv":
        deploy.run(api, 630, v1, "--currency", "EUR")
    elif change == "env":
        deploy.run(api, 630, v1, env={"APP_MODE": "debug", "FEATURE_X": "on"})
    return [api, db]


@pytest.mark.parametrize(
    ("change", "shown", "hidden"),
    [
        pytest.param("config", ["config file conf.toml"], [], id="config-file-changed"),
        pytest.param("argv", ["argv[8]: (none) -> --currency", "EUR"], [], id="argv-changed"),
        pytest.param(
            "env", ["env APP_MODE changed", "env FEATURE_X added"], ["debug", "prod"], id="env"
        ),
    ],
)
def test_a_restart_with_a_new_fingerprint_is_a_change_at_that_instance(
    tmp_path: Path, change: str, shown: list[str], hidden: list[str]
) -> None:
    report = why(tmp_path, redeployed(Deployment(tmp_path), change))

    top = report["suspects"][0]
    assert (top["service"], top["instance"]) == ("api", "api-0"), report["suspects"]
    (finding,) = ours(report)
    assert finding["kind"] == "change"
    text = json.dumps(finding)
    assert all(words in text for words in shown), text
    assert not any(words in text for words in hidden), text  # environment values stay hidden
    assert finding["start_ns"] == START_NS + int(630.5 * SECOND)


def test_the_same_fingerprint_after_a_restart_is_no_change(tmp_path: Path) -> None:
    deploy = Deployment(tmp_path)
    v1 = deploy.version("v1", "workers = 4\n")
    api = deploy.run(Process("api", "api-0"), 5, v1).exit(629, 1).restart(629.1, 1)
    deploy.run(api, 630, v1)
    assert ours(why(tmp_path, [api])) == []


def test_packages_that_could_not_be_listed_at_a_restart_are_no_change(tmp_path: Path) -> None:
    deploy = Deployment(tmp_path)
    v1 = deploy.version("v1", "workers = 4\n")
    argv = [sys.executable, "-c", "pass", "--config=conf.toml"]
    api = Process("api", "api-0").start(5, argv).fingerprint(5.5, argv, v1, deploy.env)
    api.exit(629, 1).restart(629.1, 1).start(630, argv, restarts=1)
    api.fingerprint(630.5, argv, v1, deploy.env, packages_listed=False)

    assert api.logs[1].attributes != api.logs[-1].attributes  # the digests differ
    assert ours(why(tmp_path, [api])) == []


def replicas(deploy: Deployment, count: int) -> list[Process]:
    """`count` catalog replicas on their own ports, started alike at 5 s."""
    v1 = deploy.version("v1", "currency = 'USD'\n")
    return [
        deploy.run(Process("catalog", f"catalog-{n}"), 5, v1, port=8000 + n)
        for n in range(1, count + 1)
    ]


@pytest.mark.parametrize("count", [pytest.param(2, id="two"), pytest.param(3, id="three")])
def test_a_replica_restarted_with_another_setting_drifts_from_its_peers(
    tmp_path: Path, count: int
) -> None:
    deploy = Deployment(tmp_path)
    processes = replicas(deploy, count)
    odd = processes[-1].exit(640, 0)
    deploy.run(
        odd, 641, deploy.version("v1", "currency = 'USD'\n"), "--currency", "EUR", port=8000 + count
    )

    report = why(tmp_path, processes)

    assert report["suspects"][0]["service"] == "catalog"
    drift = next(f for f in ours(report) if f["kind"] == "config-drift")
    assert drift["instance"] == odd.instance
    text = json.dumps(drift)
    assert "--currency" in text
    assert "--port" not in text and "argv[4]" not in text  # ports differ by nature
    assert "ongoing" not in drift["summary"]
    assert drift["severity"] in ("warning", "critical")


def test_the_minority_of_three_replicas_is_the_odd_one_out(tmp_path: Path) -> None:
    deploy = Deployment(tmp_path)
    processes = replicas(deploy, 2)
    odd = deploy.run(
        Process("catalog", "catalog-3"), 5, deploy.version("v2", "currency = 'EUR'\n"), port=8003
    )

    report = why(tmp_path, [*processes, odd])

    (drift,) = ours(report)
    assert (drift["kind"], drift["instance"]) == ("config-drift", "catalog-3")
    assert "config file conf.toml" in drift["summary"]
    assert "ongoing" in drift["summary"]  # it ran like this before the window too


@pytest.mark.parametrize("count", [pytest.param(2, id="two"), pytest.param(3, id="three")])
def test_replicas_that_differ_only_by_nature_do_not_drift(tmp_path: Path, count: int) -> None:
    assert ours(why(tmp_path, replicas(Deployment(tmp_path), count))) == []
