"""`steth run` put together: shipper, parser, probe and supervisor, and the report at the end."""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from stethoscope.agent.inject import child_environment
from stethoscope.sources.records import SEVERITY, log_record
from stethoscope.sources.run.config import RunConfig
from stethoscope.sources.run.fingerprint import FingerprintLimits, collect_fingerprint
from stethoscope.sources.run.periodic import Periodic
from stethoscope.sources.run.probe import HttpProbe
from stethoscope.sources.run.redact import redact_text
from stethoscope.sources.run.streams import LineParser
from stethoscope.sources.run.supervisor import Supervisor
from stethoscope.sources.shipper import Channel, Shipper, ShipperConfig, ShipperStats

__all__ = ["run_command"]

SCOPE = "stethoscope.run"
GIL_SWITCH_S = 0.0005


def run_command(config: RunConfig, *, base_env: Mapping[str, str] | None = None) -> int:
    """Supervise `config.command` until it exits for good; its exit status."""
    config.validate()
    # The pumps hold the interpreter only briefly per 64 KiB; a short switch interval lets them
    # have it back soon after each read even while the parser is busy (5 ms by default).
    sys.setswitchinterval(GIL_SWITCH_S)
    base = dict(os.environ if base_env is None else base_env)
    env = child_environment(
        config.command,
        base,
        service=config.service,
        instance=config.instance,
        endpoint=config.endpoint,
        token=config.token,
        instrument=config.instrument,
    )
    shipper = Shipper(ShipperConfig(endpoint=config.endpoint, token=config.token)).start()
    channel = shipper.channel(
        service=config.service,
        instance=config.instance,
        scope=SCOPE,
        resource_attributes={
            "host.name": socket.gethostname(),
            "process.executable.name": Path(config.command[0]).name,
        },
    )
    parser = LineParser(
        channel,
        queue_bytes=config.capture_queue_bytes,
        max_line_bytes=config.max_line_bytes,
        multiline_max_lines=config.multiline_max_lines,
        multiline_max_bytes=config.multiline_max_bytes,
        multiline_idle_s=config.multiline_idle_s,
    ).start()
    fingerprints = _Fingerprints(config, base, channel)
    probe = _start_probe(config, channel)
    supervisor = Supervisor(
        config, channel=channel, parser=parser, env=env, on_start=fingerprints.start
    )
    try:
        status = supervisor.run()
    finally:
        if probe is not None:
            probe[0].stop()
            probe[1].close()
        fingerprints.wait(config.flush_timeout_s)
        parser.close(timeout_s=config.flush_timeout_s)
        _report_dropped(parser.dropped_lines, channel)
        stats = shipper.close(timeout_s=config.flush_timeout_s)
        _report_undelivered(stats, config.endpoint)
    return status


class _Fingerprints:
    """Each start's fingerprint, computed off the main thread (hashing can take a moment)."""

    def __init__(self, config: RunConfig, base_env: Mapping[str, str], channel: Channel) -> None:
        self._argv = config.command
        self._env = dict(base_env)
        self._cwd = Path.cwd()
        self._channel = channel
        self._threads: list[threading.Thread] = []

    def start(self, pid: int) -> None:
        """Fingerprint the child just started (with pid `pid`) in the background."""
        self._threads = [thread for thread in self._threads if thread.is_alive()]
        thread = threading.Thread(
            target=self._emit, args=(pid,), name="steth-run-fingerprint", daemon=True
        )
        thread.start()
        self._threads.append(thread)

    def wait(self, timeout_s: float) -> None:
        """Give fingerprints in progress a bounded time to finish."""
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _emit(self, pid: int) -> None:
        attributes = collect_fingerprint(self._argv, self._env, self._cwd, FingerprintLimits())
        attributes["process.pid"] = pid
        self._channel.log(
            log_record(
                time_ns=time.time_ns(),
                body=f"fingerprint {attributes['steth.fingerprint'][:16]} of pid {pid}",
                severity_number=SEVERITY["INFO"],
                severity_text="INFO",
                attributes=attributes,
                event_name="process.fingerprint",
            )
        )


def _start_probe(config: RunConfig, channel: Channel) -> tuple[Periodic, HttpProbe] | None:
    if config.probe_url is None:
        return None
    probe = HttpProbe(
        config.probe_url,
        timeout_s=config.probe_timeout_s,
        grace_s=config.probe_grace_s,
        channel=channel,
    )
    return Periodic("steth-run-probe", config.probe_every_s, probe.check).start(), probe


def _report_dropped(dropped_lines: int, channel: Channel) -> None:
    """Lines the parser could not keep up with are reported, as the shipper reports overflow."""
    if not dropped_lines:
        return
    print(
        f"steth run: {dropped_lines} output lines were not captured (parser queue full)",
        file=sys.stderr,
    )
    channel.log(
        log_record(
            time_ns=time.time_ns(),
            body=f"{dropped_lines} output lines were not captured (parser queue full)",
            severity_number=SEVERITY["WARN"],
            severity_text="WARN",
            attributes={"steth.dropped_records": dropped_lines},
            event_name="capture.overflow",
        )
    )


def _report_undelivered(stats: ShipperStats, endpoint: str) -> None:
    """Never lose records silently: say on stderr how many did not reach the collector."""
    lost = stats.pending + stats.dropped_logs + stats.dropped_metrics + stats.rejected
    if not lost:
        return
    why = f" ({stats.last_error})" if stats.last_error else ""
    print(
        f"steth run: {lost} records could not be delivered to {redact_text(endpoint)}{why}: "
        f"{stats.pending} still waiting, {stats.dropped_logs + stats.dropped_metrics} dropped "
        f"(spool full), {stats.rejected} rejected",
        file=sys.stderr,
    )
